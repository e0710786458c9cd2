//! placeholder: owned by the drill engineer
