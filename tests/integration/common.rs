//! The harness under the name the test files import it by.
pub use harness::*;
