//! One file per subcommand.

pub mod bench;
pub mod data;
pub mod quickstart;
pub mod sample;
pub mod tokenizer;
pub mod train;
