// The recommender example's modules, for the tests that exercise it without running the
// binary (`include!`d at a test crate's root; the paths are relative to this file).
#[path = "../../examples/recommender/charts.rs"]
mod charts;
#[path = "../../examples/recommender/cli.rs"]
mod cli;
#[path = "../../examples/recommender/data.rs"]
mod data;
#[path = "../../examples/recommender/evaluate.rs"]
mod evaluate;
#[path = "../../examples/recommender/guard.rs"]
mod guard;
#[path = "../../examples/recommender/mfblock.rs"]
mod mfblock;
#[path = "../../examples/recommender/model.rs"]
mod model;
#[path = "../../examples/recommender/persist.rs"]
mod persist;
#[path = "../../examples/recommender/pipeline.rs"]
mod pipeline;
#[path = "../../examples/recommender/rank_models.rs"]
mod rank_models;
#[path = "../../examples/recommender/sagemaker.rs"]
mod sagemaker;
#[path = "../../examples/recommender/sasrec.rs"]
mod sasrec;
#[path = "../../examples/recommender/search.rs"]
mod search;
#[path = "../../examples/recommender/serve.rs"]
mod serve;
#[path = "../../examples/recommender/server.rs"]
mod server;
#[path = "../../examples/recommender/train.rs"]
mod train;
