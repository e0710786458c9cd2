//! placeholder: owned by the site engineer
