"""libs/store.chunks: long `$in` lists in slices."""

from libs.store import IN_CHUNK, chunks


def test_slices_keep_order_and_bound_their_length():
    ids = list(range(2 * IN_CHUNK + 7))
    sliced = chunks(ids)
    assert [len(c) for c in sliced] == [IN_CHUNK, IN_CHUNK, 7]
    assert [i for c in sliced for i in c] == ids
    assert chunks([]) == [] and chunks(("a", "b", "c"), size=2) == [["a", "b"], ["c"]]
