//! One file per subcommand.

pub mod bench;
pub mod bench_embed;
pub mod chat;
pub mod clean;
pub mod data;
pub mod data_chat;
pub mod eval;
pub mod export;
pub mod generate;
pub mod import;
pub mod lexical;
pub mod model_files;
pub mod ngram;
pub mod profile;
pub mod quickstart;
pub mod task;
pub mod tokenizer;
pub mod train;
pub mod vectors;
pub mod serve;
pub mod feedback;
// issue 15: seq2seq evaluation and attention maps
pub mod attention;
pub mod eval_chat;
pub mod eval_pairs;
pub mod embed;
pub mod fill_mask;
pub mod sft;
// issue 15: jielong compare (the table and the plot in compare_report)
pub mod compare;
pub mod compare_regimes;
pub mod compare_report;
pub mod compare_seq2seq;
// issue 18 (ftdata): jielong data ner / data qa
pub mod data_spans;
// issue 18: task fine-tuning (classification), predict
pub mod finetune;
pub mod lora;
pub mod study;
pub mod predict;
pub mod data_labelled;
