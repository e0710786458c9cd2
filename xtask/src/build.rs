//! placeholder: owned by the build engineer
