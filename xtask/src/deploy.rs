//! placeholder: owned by the deploy engineer
