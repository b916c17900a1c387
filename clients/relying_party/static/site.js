// Waiting pages: ask the site whether the phone has answered, then move on by ourselves.
(function () {
  "use strict";
  var status = document.getElementById("waiting");
  if (!status) { return; }
  var url = status.getAttribute("data-status-url");
  function show(message) {
    status.textContent = message;
    status.className = "status failed";
  }
  function poll() {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (response) { return response.json(); })
      .then(function (answer) {
        if (answer.status === "pending") { window.setTimeout(poll, 1000); return; }
        if (answer.next) { window.location.assign(answer.next); return; }
        show(answer.message || "");
      })
      .catch(function () { window.setTimeout(poll, 2000); });
  }
  window.setTimeout(poll, 500);
})();
