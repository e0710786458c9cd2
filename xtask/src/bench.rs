//! placeholder: owned by the bench engineer
