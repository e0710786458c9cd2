//! placeholder: owned by the lint engineer
