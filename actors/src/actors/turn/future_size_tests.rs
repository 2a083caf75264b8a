//! The turn's future stays small (every move copies all of it).

/// The size of the future `f` returns, without calling it.
fn of<A, Fut, F: FnOnce(A) -> Fut>(_: F) -> usize {
    std::mem::size_of::<Fut>()
}

/// Every move of a future copies all of it, and a turn's is moved into its box and on
/// through wrappers: its rarer, larger paths are boxed (it was 25 KB with the widget
/// action's inline).
#[test]
fn a_turns_future_stays_small() {
    let size = of(super::run_turn);
    assert!(size < 16 * 1024, "run_turn's future is {size} bytes");
}
