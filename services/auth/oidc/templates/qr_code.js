/* The login page's QR code, drawn by the page itself (ISO/IEC 18004).

   Error level M survives a smudged or glary laptop screen; the white square
   behind the modules keeps the code readable when the page is in dark mode.
   The code changes every second (qr_links.py); drawn by auth it cost 1.3 ms of
   auth's CPU per page and per second a page was shown. The page now receives
   only the link and draws it here. The result is module for module what segno
   makes of the same link with error level M (raised to Q or H when the link
   still fits the same version, as segno's boost_error does) and the page's
   fixed mask, and the SVG is segno's markup: tests/unit/test_qr_code_js.py
   holds both to segno over hundreds of links, and the browser tests read the
   drawn code back with an independent decoder.

   Byte mode only: a login link has lower-case letters, for which segno
   chooses byte mode too. Loaded into the login page's nonce'd script, and by
   node in the unit test (module.exports). */
var HarbourQr = (function () {
  "use strict";

  // Error correction codewords per block and number of blocks, by level and version (1-40; index 0 unused).
  var ECC_PER_BLOCK = {
    L: [0, 7, 10, 15, 20, 26, 18, 20, 24, 30, 18, 20, 24, 26, 30, 22, 24, 28, 30, 28, 28, 28, 28, 30, 30, 26, 28, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30],
    M: [0, 10, 16, 26, 18, 24, 16, 18, 22, 22, 26, 30, 22, 22, 24, 24, 28, 28, 26, 26, 26, 26, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28],
    Q: [0, 13, 22, 18, 26, 18, 24, 18, 22, 20, 24, 28, 26, 24, 20, 30, 24, 28, 28, 26, 30, 28, 30, 30, 30, 30, 28, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30],
    H: [0, 17, 28, 22, 16, 22, 28, 26, 26, 24, 28, 24, 28, 22, 24, 24, 30, 28, 28, 26, 28, 30, 24, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30]
  };
  var BLOCKS = {
    L: [0, 1, 1, 1, 1, 1, 2, 2, 2, 2, 4, 4, 4, 4, 4, 6, 6, 6, 6, 7, 8, 8, 9, 9, 10, 12, 12, 12, 13, 14, 15, 16, 17, 18, 19, 19, 20, 21, 22, 24, 25],
    M: [0, 1, 1, 1, 2, 2, 4, 4, 4, 5, 5, 5, 8, 9, 9, 10, 10, 11, 13, 14, 16, 17, 17, 18, 20, 21, 23, 25, 26, 28, 29, 31, 33, 35, 37, 38, 40, 43, 45, 47, 49],
    Q: [0, 1, 1, 2, 2, 4, 4, 6, 6, 8, 8, 8, 10, 12, 16, 12, 17, 16, 18, 21, 20, 23, 23, 25, 27, 29, 34, 34, 35, 38, 40, 43, 45, 48, 51, 53, 56, 59, 62, 65, 68],
    H: [0, 1, 1, 2, 4, 4, 4, 5, 6, 8, 8, 11, 11, 16, 16, 18, 16, 19, 21, 25, 25, 25, 34, 30, 32, 35, 37, 40, 42, 45, 48, 51, 54, 57, 60, 63, 66, 70, 74, 77, 81]
  };
  var LEVEL_BITS = {L: 1, M: 0, Q: 3, H: 2};
  // The eight data masks (x: column, y: row); a module is inverted where its mask is true.
  var MASKS = [
    function (x, y) { return (x + y) % 2 === 0; },
    function (x, y) { return y % 2 === 0; },
    function (x, y) { return x % 3 === 0; },
    function (x, y) { return (x + y) % 3 === 0; },
    function (x, y) { return (Math.floor(x / 3) + Math.floor(y / 2)) % 2 === 0; },
    function (x, y) { return x * y % 2 + x * y % 3 === 0; },
    function (x, y) { return (x * y % 2 + x * y % 3) % 2 === 0; },
    function (x, y) { return ((x + y) % 2 + x * y % 3) % 2 === 0; }
  ];
  var BORDER = 4;  // modules of light quiet zone around the code
  var SCALE = 5;   // SVG user units per module

  // Modules that carry codewords (data and error correction, remainder bits included) in a version.
  function rawModules(version) {
    var count = (16 * version + 128) * version + 64;
    if (version >= 2) {
      var align = Math.floor(version / 7) + 2;
      count -= (25 * align - 10) * align - 55;
      if (version >= 7) { count -= 36; }
    }
    return count;
  }

  function dataCodewords(version, level) {
    return Math.floor(rawModules(version) / 8) - ECC_PER_BLOCK[level][version] * BLOCKS[level][version];
  }

  function bitLength(bytes, version) {
    return 4 + (version < 10 ? 8 : 16) + 8 * bytes.length;  // mode, character count, the bytes
  }

  function alignmentCentres(version) {
    if (version === 1) { return []; }
    var count = Math.floor(version / 7) + 2;
    var step = version === 32 ? 26 : Math.ceil((version * 4 + 4) / (count * 2 - 2)) * 2;
    var centres = [6];
    for (var at = version * 4 + 10; centres.length < count; at -= step) { centres.splice(1, 0, at); }
    return centres;
  }

  // GF(256) with the QR code's polynomial x^8 + x^4 + x^3 + x^2 + 1.
  function multiply(x, y) {
    var z = 0;
    for (var i = 7; i >= 0; i--) {
      z = (z << 1) ^ ((z >>> 7) * 0x11d);
      z ^= ((y >>> i) & 1) * x;
    }
    return z;
  }

  // Reed-Solomon generator polynomial of `degree` (its coefficients, highest first, the leading 1 left out).
  function generator(degree) {
    var coefficients = [];
    for (var i = 0; i < degree - 1; i++) { coefficients.push(0); }
    coefficients.push(1);
    var root = 1;
    for (i = 0; i < degree; i++) {
      for (var j = 0; j < degree; j++) {
        coefficients[j] = multiply(coefficients[j], root);
        if (j + 1 < degree) { coefficients[j] ^= coefficients[j + 1]; }
      }
      root = multiply(root, 2);
    }
    return coefficients;
  }

  function errorCorrection(data, coefficients) {
    var remainder = coefficients.map(function () { return 0; });
    data.forEach(function (codeword) {
      var factor = codeword ^ remainder.shift();
      remainder.push(0);
      coefficients.forEach(function (coefficient, i) { remainder[i] ^= multiply(coefficient, factor); });
    });
    return remainder;
  }

  // The data codewords: byte mode, the terminator, zero bits to a codeword boundary, the pad codewords 0xEC 0x11 in turn.
  function dataCodewordsOf(bytes, version, level) {
    var bits = [];
    function put(value, count) { for (var i = count - 1; i >= 0; i--) { bits.push((value >>> i) & 1); } }
    put(4, 4);
    put(bytes.length, version < 10 ? 8 : 16);
    bytes.forEach(function (b) { put(b, 8); });
    var capacity = dataCodewords(version, level) * 8;
    put(0, Math.min(4, capacity - bits.length));
    // Zero bits to the next codeword boundary, a whole zero codeword when the stream ends on one (as segno writes
    // it; a reader stops at the terminator either way), within the capacity.
    put(0, Math.min(8 - bits.length % 8, capacity - bits.length));
    for (var pad = 0xec; bits.length < capacity; pad ^= 0xec ^ 0x11) { put(pad, 8); }
    var codewords = [];
    for (var i = 0; i < bits.length; i += 8) {
      var codeword = 0;
      for (var j = 0; j < 8; j++) { codeword = (codeword << 1) | bits[i + j]; }
      codewords.push(codeword);
    }
    return codewords;
  }

  // The final sequence: the data split into blocks, each with its error correction, interleaved.
  function finalCodewords(data, version, level) {
    var blocks = BLOCKS[level][version];
    var eccLength = ECC_PER_BLOCK[level][version];
    var raw = Math.floor(rawModules(version) / 8);
    var shortBlocks = blocks - raw % blocks;
    var shortLength = Math.floor(raw / blocks) - eccLength;
    var coefficients = generator(eccLength);
    var dataBlocks = [];
    var eccBlocks = [];
    for (var i = 0, at = 0; i < blocks; i++) {
      var length = shortLength + (i < shortBlocks ? 0 : 1);
      var block = data.slice(at, at + length);
      at += length;
      dataBlocks.push(block);
      eccBlocks.push(errorCorrection(block, coefficients));
    }
    var sequence = [];
    for (i = 0; i <= shortLength; i++) {
      dataBlocks.forEach(function (b) { if (i < b.length) { sequence.push(b[i]); } });
    }
    for (i = 0; i < eccLength; i++) {
      eccBlocks.forEach(function (b) { sequence.push(b[i]); });
    }
    return sequence;
  }

  // The module matrix (rows of 0/1, 1 dark) of `text` with data mask `mask`.
  function encode(text, mask) {
    var bytes = Array.from(new TextEncoder().encode(text));
    var version = 1;
    while (bitLength(bytes, version) > dataCodewords(version, "M") * 8) {
      if (++version > 40) { throw new RangeError("too long for a QR code"); }
    }
    var level = "M";
    ["Q", "H"].every(function (higher) {
      if (bitLength(bytes, version) > dataCodewords(version, higher) * 8) { return false; }
      level = higher;
      return true;
    });
    var size = version * 4 + 17;
    var modules = [];
    var reserved = [];
    for (var y = 0; y < size; y++) {
      modules.push(new Array(size).fill(0));
      reserved.push(new Array(size).fill(false));
    }
    function set(x, y, dark) {
      modules[y][x] = dark ? 1 : 0;
      reserved[y][x] = true;
    }
    for (var i = 0; i < size; i++) {  // timing patterns
      set(6, i, i % 2 === 0);
      set(i, 6, i % 2 === 0);
    }
    [[3, 3], [size - 4, 3], [3, size - 4]].forEach(function (centre) {  // finder patterns and their separators
      for (var dy = -4; dy <= 4; dy++) {
        for (var dx = -4; dx <= 4; dx++) {
          var x = centre[0] + dx;
          var y = centre[1] + dy;
          var ring = Math.max(Math.abs(dx), Math.abs(dy));
          if (x >= 0 && x < size && y >= 0 && y < size) { set(x, y, ring !== 2 && ring !== 4); }
        }
      }
    });
    var centres = alignmentCentres(version);
    centres.forEach(function (cy, row) {
      centres.forEach(function (cx, column) {
        var last = centres.length - 1;
        if ((row === 0 && column === 0) || (row === 0 && column === last) || (row === last && column === 0)) { return; }
        for (var dy = -2; dy <= 2; dy++) {
          for (var dx = -2; dx <= 2; dx++) { set(cx + dx, cy + dy, Math.max(Math.abs(dx), Math.abs(dy)) !== 1); }
        }
      });
    });
    function drawFormat() {  // level and mask with their BCH code, twice; and the dark module
      var value = (LEVEL_BITS[level] << 3) | mask;
      var remainder = value;
      for (var k = 0; k < 10; k++) { remainder = (remainder << 1) ^ ((remainder >>> 9) * 0x537); }
      var bits = ((value << 10) | remainder) ^ 0x5412;
      function bit(n) { return (bits >>> n) & 1; }
      for (var n = 0; n <= 5; n++) { set(8, n, bit(n)); }
      set(8, 7, bit(6));
      set(8, 8, bit(7));
      set(7, 8, bit(8));
      for (n = 9; n < 15; n++) { set(14 - n, 8, bit(n)); }
      for (n = 0; n < 8; n++) { set(size - 1 - n, 8, bit(n)); }
      for (n = 8; n < 15; n++) { set(8, size - 15 + n, bit(n)); }
      set(8, size - 8, 1);
    }
    drawFormat();
    if (version >= 7) {  // version information with its BCH code, twice
      var remainder = version;
      for (var k = 0; k < 12; k++) { remainder = (remainder << 1) ^ ((remainder >>> 11) * 0x1f25); }
      var bits = (version << 12) | remainder;
      for (i = 0; i < 18; i++) {
        var a = size - 11 + i % 3;
        var b = Math.floor(i / 3);
        set(a, b, (bits >>> i) & 1);
        set(b, a, (bits >>> i) & 1);
      }
    }
    // The codewords in two-module columns, zigzagging up and down from the bottom right; remainder bits stay light.
    var codewords = finalCodewords(dataCodewordsOf(bytes, version, level), version, level);
    var total = codewords.length * 8;
    var placed = 0;
    for (var right = size - 1; right >= 1; right -= 2) {
      if (right === 6) { right = 5; }  // the vertical timing pattern's column is skipped
      var upward = ((right + 1) & 2) === 0;
      for (var step = 0; step < size; step++) {
        for (var j = 0; j < 2; j++) {
          var column = right - j;
          var row = upward ? size - 1 - step : step;
          if (!reserved[row][column] && placed < total) {
            modules[row][column] = (codewords[placed >>> 3] >>> (7 - (placed & 7))) & 1;
            placed++;
          }
        }
      }
    }
    for (y = 0; y < size; y++) {
      for (var x = 0; x < size; x++) {
        if (!reserved[y][x] && MASKS[mask](x, y)) { modules[y][x] ^= 1; }
      }
    }
    return modules;
  }

  // The dark modules as one SVG path of horizontal runs, each relative to the end of the one before (the first
  // absolute, half a module into its row): what segno writes for stroke paths, and auth's qr_svg did before.
  function pathData(modules) {
    var parts = [];
    var previousEnd = 0;
    var previousRow = -1;
    modules.forEach(function (cells, row) {
      for (var column = 0; column < cells.length; column++) {
        if (!cells[column]) { continue; }
        var start = column;
        while (column < cells.length && cells[column]) { column++; }
        var x = BORDER + start;
        var length = column - start;
        parts.push(parts.length ? "m" + (x - previousEnd) + " " + (row - previousRow) + "h" + length
                                : "M" + x + " " + (BORDER + row) + ".5h" + length);
        previousEnd = x + length;
        previousRow = row;
      }
    });
    return parts.join("");
  }

  // The code as an <svg class="qr-code"> element for `document`: a white square (the quiet zone included, readable
  // in dark mode) and the dark modules, titled `title`.
  function svg(document, text, mask, title) {
    var ns = "http://www.w3.org/2000/svg";
    var modules = encode(text, mask);
    var size = modules.length + 2 * BORDER;
    var side = String(size * SCALE);
    var element = document.createElementNS(ns, "svg");
    element.setAttribute("viewBox", "0 0 " + side + " " + side);
    element.setAttribute("class", "qr-code");
    var heading = document.createElementNS(ns, "title");
    heading.textContent = title;
    element.appendChild(heading);
    var group = document.createElementNS(ns, "g");
    group.setAttribute("transform", "scale(" + SCALE + ")");
    var background = document.createElementNS(ns, "path");
    background.setAttribute("fill", "#fff");
    background.setAttribute("d", "M0 0h" + size + "v" + size + "h-" + size + "z");
    var dark = document.createElementNS(ns, "path");
    dark.setAttribute("stroke", "#000");
    dark.setAttribute("d", pathData(modules));
    group.appendChild(background);
    group.appendChild(dark);
    element.appendChild(group);
    return element;
  }

  return {encode: encode, pathData: pathData, svg: svg};
})();

if (typeof module !== "undefined") { module.exports = HarbourQr; }
