//! placeholder: owned by the reliability engineer
