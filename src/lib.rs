pub use chatkit_actors;
