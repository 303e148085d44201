//! The model API: `#[derive(Block)]` naming and state, typed multi-input models through
//! the Estimator and a checkpoint resume, files written before the derive, and the
//! smaller conveniences (re-initialisation, stale gradients, printing, operators,
//! optimizers by name).

use boson::data::{ArrayDataset, DataLoader};
use boson::estimator::{CheckpointHandler, Estimator, FitUntil, LogCapture};
use boson::loss::{L2Loss, Loss};
use boson::nn::{
    Activation, BatchNorm, Block, Dense, Dropout, Embedding, Forward, Initializer, LayerNorm,
    Model, Sequential,
};
use boson::optim::{self, Adam, Optimizer, Sgd, Trainer};
use boson::{autograd, rng, Device, Error, Result, Tensor};
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

/// Tests that seed the global random stream run one at a time.
static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn lock() -> std::sync::MutexGuard<'static, ()> {
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/v0")
        .join(name)
}

/// Every kind of field the derive handles.
#[derive(Block)]
struct Everything {
    towers: Vec<Dense>,
    head: Option<Dense>,
    absent: Option<Dense>,
    #[block(rename = "out")]
    last: Dense,
    #[block(skip)]
    _note: String,
    norm: BatchNorm,
    drop: Dropout,
    shared: Arc<Dense>,
    boxed: Box<Embedding>,
    #[block(state)]
    steps: AtomicU64,
}

fn everything() -> Everything {
    Everything {
        towers: vec![Dense::new(2).in_units(3), Dense::new(2).in_units(3)],
        head: Some(Dense::new(1).in_units(2).use_bias(false)),
        absent: None,
        last: Dense::new(1).in_units(1),
        _note: "not a block".into(),
        norm: BatchNorm::new(2),
        drop: Dropout::new(0.5),
        shared: Arc::new(Dense::new(1).in_units(1)),
        boxed: Box::new(Embedding::new(4, 2)),
        steps: AtomicU64::new(7),
    }
}

#[test]
fn derive_names_every_field_kind_in_declaration_order() {
    let net = everything();
    assert_eq!(
        net.collect_params().names(),
        [
            "towers.0.weight",
            "towers.0.bias",
            "towers.1.weight",
            "towers.1.bias",
            "head.weight",
            "out.weight",
            "out.bias",
            "norm.gamma",
            "norm.beta",
            "norm.running_mean",
            "norm.running_var",
            "shared.weight",
            "shared.bias",
            "boxed.weight",
        ]
    );
    let state = net.collect_state();
    assert_eq!(
        state.keys().collect::<Vec<_>>(),
        ["drop.calls", "steps"],
        "{state:?}"
    );
    assert_eq!(state["steps"], 7);
    assert_eq!(net.kind(), "everything");
}

/// A tuple struct, a generic block and a custom kind.
#[derive(Block)]
#[block(kind = "pair-of-dense")]
struct Pair(Dense, Dense);

#[derive(Block)]
struct Residual<B> {
    inner: B,
}

impl<B: Forward<Input = Tensor>> Forward for Residual<B> {
    type Input = Tensor;
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x + self.inner.forward(x)?
    }
}

#[test]
fn derive_handles_tuple_structs_generics_and_kinds() {
    let pair = Pair(Dense::new(1).in_units(1), Dense::new(1).in_units(1));
    assert_eq!(
        pair.collect_params().names(),
        ["0.weight", "0.bias", "1.weight", "1.bias"]
    );
    assert_eq!(pair.kind(), "pair-of-dense");

    let res = Residual {
        inner: Dense::new(3).in_units(3),
    };
    res.initialize(&Initializer::Zero, Device::Cpu).unwrap();
    // Zero weights: the residual block is the identity.
    let x = Tensor::from_vec(vec![1.0, -2.0, 3.0], &[1, 3]).unwrap();
    assert_eq!(
        res.forward(&x).unwrap().to_vec_f32().unwrap(),
        [1.0, -2.0, 3.0]
    );
    // A derived block in a Sequential is named by its kind.
    let seq = Sequential::new().add(res).add(Activation::Relu);
    assert_eq!(seq.child_names(), ["residual0", "activation0"]);
    assert_eq!(
        seq.collect_params().names(),
        ["residual0.inner.weight", "residual0.inner.bias"]
    );
}

#[test]
fn restore_state_is_strict_and_changes_nothing_on_a_mismatch() {
    let net = everything();
    let mut state = net.collect_state();
    state.insert("drop.calls".into(), 5.into());
    net.restore_state(&state).unwrap();
    assert_eq!(net.collect_state()["drop.calls"], 5);

    let mut missing = state.clone();
    missing.remove("steps");
    missing.insert("drop.calls".into(), 9.into());
    let err = net.restore_state(&missing).unwrap_err().to_string();
    assert!(err.contains("no value for state 'steps'"), "{err}");
    assert_eq!(net.collect_state()["drop.calls"], 5, "changed on error");

    let mut extra = state.clone();
    extra.insert("dropout_user.calls".into(), 1.into());
    let err = net.restore_state(&extra).unwrap_err().to_string();
    assert!(err.contains("'dropout_user.calls'"), "{err}");

    let mut bad = state;
    bad.insert("steps".into(), "seven".into());
    let err = net.restore_state(&bad).unwrap_err().to_string();
    assert!(
        err.contains("state 'steps'") && err.contains("\"seven\""),
        "{err}"
    );
}

/// The crate docs' model (src/lib.rs), verbatim: two inputs, a dense layer shared by both
/// sides, one dropout layer.
#[derive(Block)]
struct Mf {
    users: Embedding,
    items: Embedding,
    dense: Dense,
    dropout: Dropout,
}

impl Forward for Mf {
    type Input = (Tensor, Tensor);
    fn forward(&self, (users, items): &(Tensor, Tensor)) -> Result<Tensor> {
        let u = self
            .dropout
            .forward(&self.dense.forward(&self.users.forward(users)?)?)?;
        let i = self
            .dropout
            .forward(&self.dense.forward(&self.items.forward(items)?)?)?;
        (&u * &i)?.sum_axis(1, false)
    }
}

fn lib_mf() -> Mf {
    Mf {
        users: Embedding::new(100, 8),
        items: Embedding::new(50, 8),
        dense: Dense::new(8).activation(Activation::Relu),
        dropout: Dropout::new(0.1),
    }
}

type Ratings = ArrayDataset<(Vec<i64>, Vec<i64>, Vec<f32>)>;

fn ratings() -> Ratings {
    let users: Vec<i64> = (0..1000).map(|k| k % 100).collect();
    let items: Vec<i64> = (0..1000).map(|k| (k * 7) % 50).collect();
    let ratings: Vec<f32> = users
        .iter()
        .zip(&items)
        .map(|(u, i)| 1.0 + ((u + i) % 5) as f32)
        .collect();
    ArrayDataset::new((users, items, ratings)).unwrap()
}

/// Trains `net` (Adam, shuffled batches of 100) through the Estimator; the parameters after.
fn fit(net: Arc<dyn Model>, epochs: usize, ck: Option<&mut CheckpointHandler>) -> Vec<Vec<f32>> {
    let loader = DataLoader::builder(ratings())
        .batch_size(100)
        .shuffle(true)
        .seed(5)
        .build()
        .unwrap();
    let trainer = Trainer::new(net.collect_params(), Adam::new(0.01)).unwrap();
    let mut est = Estimator::builder(net.clone(), L2Loss::new())
        .trainer(trainer)
        .initializer(Initializer::xavier(3.0))
        .log_writer(LogCapture::new())
        .build()
        .unwrap();
    let mut handlers: Vec<&mut dyn boson::estimator::EventHandler> = Vec::new();
    if let Some(ck) = ck {
        handlers.push(ck);
    }
    est.fit(&loader, None, FitUntil::Epochs(epochs), &mut handlers)
        .unwrap();
    net.collect_params()
        .iter()
        .map(|(_, p)| p.data().unwrap().to_vec_f32().unwrap())
        .collect()
}

fn resume_matches_uninterrupted(make: impl Fn() -> Arc<dyn Model>, state_key: &str) {
    rng::seed(42);
    let whole = fit(make(), 4, None);
    let dir = tempfile::tempdir().unwrap();
    rng::seed(42);
    let part = fit(make(), 2, Some(&mut CheckpointHandler::new(dir.path())));
    assert_ne!(part, whole);
    // The dropout counter is in the checkpoint: without it the masks would differ.
    let meta: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("model-epoch2batch20.json")).unwrap(),
    )
    .unwrap();
    assert!(meta["state"][state_key].as_u64().unwrap() > 0, "{meta}");

    rng::seed(42);
    let mut ck = CheckpointHandler::new(dir.path()).resume_from_checkpoint(true);
    let resumed = fit(make(), 4, Some(&mut ck));
    assert!(ck.resumed_from().is_some());
    assert_eq!(resumed, whole, "a resumed run ends on other parameters");
}

#[test]
fn the_crate_docs_model_resumes_exactly_through_a_checkpoint() {
    let _g = lock();
    resume_matches_uninterrupted(|| Arc::new(lib_mf()), "dropout.calls");
}

/// Batch norm's running statistics and a dropout counter, inside a Sequential.
#[derive(Block)]
struct NormedMf {
    users: Embedding,
    items: Embedding,
    tower: Sequential,
}

impl Forward for NormedMf {
    type Input = (Tensor, Tensor);
    fn forward(&self, (users, items): &(Tensor, Tensor)) -> Result<Tensor> {
        let u = self.tower.forward(&self.users.forward(users)?)?;
        let i = self.tower.forward(&self.items.forward(items)?)?;
        (&u * &i)?.sum_axis(1, false)
    }
}

#[test]
fn batch_norm_and_dropout_state_resume_exactly() {
    let _g = lock();
    let make = || -> Arc<dyn Model> {
        Arc::new(NormedMf {
            users: Embedding::new(100, 6),
            items: Embedding::new(50, 6),
            tower: Sequential::new()
                .add(Dense::new(6).in_units(6))
                .add(BatchNorm::new(6))
                .add(Dropout::new(0.2)),
        })
    };
    resume_matches_uninterrupted(make, "tower.dropout0.calls");
}

#[test]
fn a_batch_with_the_wrong_number_of_inputs_names_both_counts() {
    let _g = lock();
    let net = Arc::new(lib_mf());
    // (x, y): one input tensor for a model that takes two.
    let xs: Vec<i64> = (0..10).collect();
    let ys: Vec<f32> = vec![1.0; 10];
    let loader = DataLoader::builder(ArrayDataset::new((xs, ys)).unwrap())
        .batch_size(5)
        .build()
        .unwrap();
    let mut est = Estimator::builder(net, L2Loss::new())
        .log_writer(LogCapture::new())
        .build()
        .unwrap();
    let err = est
        .fit(&loader, None, FitUntil::Epochs(1), &mut [])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("takes 2 input tensor(s) but the batch has 1"),
        "{err}"
    );
}

#[test]
fn a_sequential_parameter_file_from_before_the_derive_loads() {
    let _g = lock();
    let expected: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture("sequential.json")).unwrap()).unwrap();
    let floats = |v: &serde_json::Value| -> Vec<f32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect()
    };
    let net = Sequential::new()
        .add(Dense::new(5).in_units(3).activation(Activation::Relu))
        .add(BatchNorm::new(5))
        .add(Dropout::new(0.2))
        .add(Dense::new(2).use_bias(false))
        .add(LayerNorm::new(2));
    let names: Vec<String> = serde_json::from_value(expected["names"].clone()).unwrap();
    assert_eq!(net.collect_params().names(), names);
    // A &str path, as Gluon's `load_parameters("file.params")`.
    let path = fixture("sequential.safetensors");
    net.load_parameters(path.to_str().unwrap(), Device::Cpu)
        .unwrap();
    let x = Tensor::from_vec(floats(&expected["x"]), &[4, 3]).unwrap();
    let y = autograd::predict_mode(|| net.forward(&x)).unwrap();
    let want = floats(&expected["y"]);
    for (a, b) in y.to_vec_f32().unwrap().iter().zip(&want) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }
}

#[test]
fn save_parameters_takes_a_str_path_and_round_trips() {
    let _g = lock();
    let net = lib_mf();
    net.initialize(&Initializer::Normal(1.0), Device::Cpu)
        .unwrap();
    let x = (
        Tensor::from_vec_i64(vec![1, 2], &[2]).unwrap(),
        Tensor::from_vec_i64(vec![3, 4], &[2]).unwrap(),
    );
    let before = autograd::predict_mode(|| net.forward(&x))
        .unwrap()
        .to_vec_f32()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mf.safetensors");
    net.save_parameters(file.to_str().unwrap()).unwrap();
    let other = lib_mf();
    other.load_parameters(&file, Device::Cpu).unwrap();
    let after = autograd::predict_mode(|| other.forward(&x))
        .unwrap()
        .to_vec_f32()
        .unwrap();
    assert_eq!(before, after);
}

#[test]
fn a_second_initialize_keeps_values_and_force_reinit_draws_new_ones() {
    let _g = lock();
    rng::seed(3);
    let net = Dense::new(4).in_units(3);
    net.initialize(&Initializer::Normal(1.0), Device::Cpu)
        .unwrap();
    let first = net.weight.data().unwrap().to_vec_f32().unwrap();
    let skipped = net
        .collect_params()
        .initialize(&Initializer::Normal(1.0), Device::Cpu)
        .unwrap();
    assert_eq!(skipped, ["weight", "bias"]);
    assert_eq!(net.weight.data().unwrap().to_vec_f32().unwrap(), first);
    net.force_reinit(&Initializer::Normal(1.0), Device::Cpu)
        .unwrap();
    let second = net.weight.data().unwrap().to_vec_f32().unwrap();
    assert_ne!(second, first);
    assert_eq!(second.len(), 12);
    // The bias keeps its own zero initializer.
    assert_eq!(
        net.bias
            .as_ref()
            .unwrap()
            .data()
            .unwrap()
            .to_vec_f32()
            .unwrap(),
        [0.0; 4]
    );
}

#[test]
fn step_without_backward_is_an_error_unless_stale_gradients_are_ignored() {
    let _g = lock();
    let net = Sequential::new()
        .add(Dense::new(1).in_units(2))
        .add(Dense::new(1).in_units(1));
    net.initialize(&Initializer::Normal(0.5), Device::Cpu)
        .unwrap();
    let mut trainer = Trainer::new(net.collect_params(), Sgd::new(0.1)).unwrap();
    let err = trainer.step(1).unwrap_err().to_string();
    assert!(
        err.contains("no gradient for 4 of 4") && err.contains("backward()"),
        "{err}"
    );

    // Only the first layer in the graph: the second's gradients are stale.
    let x = Tensor::from_vec(vec![1.0, 2.0], &[1, 2]).unwrap();
    let first = Dense::new(1).in_units(2);
    let trained = Sequential::new().add(first);
    let head = Dense::new(1).in_units(1);
    trained
        .initialize(&Initializer::Normal(0.5), Device::Cpu)
        .unwrap();
    head.initialize(&Initializer::Normal(0.5), Device::Cpu)
        .unwrap();
    let mut params = trained.collect_params();
    for (name, p) in head.collect_params().iter() {
        params.insert(format!("head.{name}"), p.clone());
    }
    let mut trainer = Trainer::new(params, Sgd::new(0.1)).unwrap();
    let backward = || {
        autograd::record(|| trained.forward(&x)?.sum_all())
            .unwrap()
            .backward()
            .unwrap()
    };
    backward();
    let err = trainer.step(1).unwrap_err().to_string();
    assert!(err.contains("head.weight, head.bias"), "{err}");
    let head_before = head.weight.data().unwrap().to_vec_f32().unwrap();
    trainer.set_ignore_stale_grad(true);
    trainer.step(1).unwrap();
    assert_eq!(
        head.weight.data().unwrap().to_vec_f32().unwrap(),
        head_before
    );
    // Once nothing has a gradient, even ignoring stale ones the step is an error.
    assert!(trainer.step(1).is_err());
    backward();
    trainer.step(1).unwrap();
}

#[test]
fn printing_a_tensor_shows_its_values() {
    let t = Tensor::from_vec(vec![1.0, 2.5, -3.0, 4.0], &[2, 2]).unwrap();
    assert_eq!(
        t.to_string(),
        "[[1.0000, 2.5000], [-3.0000, 4.0000]] <Tensor [2, 2] f32 @cpu>"
    );
    let dbg = format!("{t:?}");
    assert!(
        dbg.starts_with("Tensor([[1.0000, 2.5000], [-3.0000, 4.0000]], shape=[2, 2]"),
        "{dbg}"
    );
    let idx = Tensor::from_vec_i64((0..10).collect(), &[10]).unwrap();
    assert!(
        idx.to_string()
            .starts_with("[0, 1, 2, ..., 7, 8, 9] <Tensor [10] i64"),
        "{idx}"
    );
    assert!(Tensor::scalar(2.0)
        .to_string()
        .starts_with("2.0000 <Tensor []"));
}

#[test]
fn arithmetic_operators_match_the_methods_and_report_shape_errors() {
    let a = Tensor::from_vec(vec![1.0, 2.0, 3.0], &[3]).unwrap();
    let b = Tensor::from_vec(vec![4.0, 5.0, 6.0], &[3]).unwrap();
    let v = |t: Result<Tensor>| t.unwrap().to_vec_f32().unwrap();
    assert_eq!(v(&a + &b), [5.0, 7.0, 9.0]);
    assert_eq!(v(&b - &a), [3.0, 3.0, 3.0]);
    assert_eq!(v(&a * &b), [4.0, 10.0, 18.0]);
    assert_eq!(v(&b / &a), v(b.div(&a)));
    assert_eq!(v(&a * 2.0), [2.0, 4.0, 6.0]);
    assert_eq!(v(&a + 1.0), [2.0, 3.0, 4.0]);
    assert_eq!(v(&a - 1.0), [0.0, 1.0, 2.0]);
    assert_eq!(v(&b / 2.0), [2.0, 2.5, 3.0]);
    assert_eq!(v(-&a), [-1.0, -2.0, -3.0]);
    assert_eq!(v(a.clone() + b.clone()), [5.0, 7.0, 9.0]);
    let wrong = Tensor::from_vec(vec![1.0, 2.0], &[2]).unwrap();
    assert!(matches!(&a + &wrong, Err(Error::ShapeMismatch { .. })));
    // Operators are recorded like the methods: d(a·b + a)/da = b + 1.
    let x = a.attach_grad();
    let y = autograd::record(|| ((&x * &b)? + &x)?.sum_all()).unwrap();
    y.backward().unwrap();
    assert_eq!(
        x.grad().unwrap().unwrap().to_vec_f32().unwrap(),
        [5.0, 6.0, 7.0]
    );
}

#[test]
fn optimizers_are_created_by_their_gluon_names() {
    let opt = optim::create(
        "sgd",
        &[("learning_rate", 0.1), ("momentum", 0.9), ("wd", 1e-4)],
    )
    .unwrap();
    assert_eq!((opt.hyper().lr, opt.hyper().wd), (0.1, 1e-4));
    assert_eq!(
        format!("{opt:?}"),
        format!("{:?}", Sgd::new(0.1).momentum(0.9).wd(1e-4))
    );
    let adam = optim::create("Adam", &[("beta2", 0.99)]).unwrap();
    assert_eq!(adam.name(), "adam");
    assert_eq!(adam.hyper().lr, 0.01, "MXNet's default learning rate");
    assert!(format!("{adam:?}").contains("beta2: 0.99"), "{adam:?}");
    let err = optim::create("lamb", &[]).unwrap_err().to_string();
    assert!(
        err.contains("unknown optimizer 'lamb'") && err.contains("adagrad"),
        "{err}"
    );
    let err = optim::create("adam", &[("momentum", 0.9)])
        .unwrap_err()
        .to_string();
    assert!(err.contains("'adam' has no parameter 'momentum'"), "{err}");
}

/// A loss that fits the Loss trait is usable on a typed model's prediction.
#[test]
fn a_typed_model_trains_in_a_plain_loop() {
    let _g = lock();
    rng::seed(11);
    let net = lib_mf();
    net.initialize(&Initializer::xavier(3.0), Device::Cpu)
        .unwrap();
    let mut trainer = Trainer::new(net.collect_params(), Adam::new(0.01)).unwrap();
    let loader = DataLoader::builder(ratings())
        .batch_size(100)
        .build()
        .unwrap();
    let mut losses = Vec::new();
    for _ in 0..5 {
        let mut total = 0.0;
        for batch in loader.iter() {
            let (u, i, r) = batch.unwrap();
            let loss = autograd::record(|| L2Loss::new().forward(&net.forward(&(u, i))?, &r, None))
                .unwrap();
            loss.backward().unwrap();
            trainer.step(100).unwrap();
            total += loss.mean_all().unwrap().to_scalar().unwrap();
        }
        losses.push(total);
    }
    assert!(losses[4] < 0.7 * losses[0], "{losses:?}");
}

/// A model whose author marked its dropout (and an activation) `#[block(skip)]`.
#[derive(Block)]
struct SkippedBlocks {
    dense: Dense,
    #[block(skip)]
    drop: Dropout,
    #[block(skip)]
    act: Option<Activation>,
    #[block(skip)]
    rate: f32,
}

// A skipped field that is a block is still visited: its state (the dropout's random
// stream) is saved and restored with the model, so a resumed run cannot drift.
#[test]
fn a_skipped_block_field_keeps_its_state_in_checkpoints() {
    let net = SkippedBlocks {
        dense: Dense::new(2),
        drop: Dropout::new(0.5),
        act: Some(Activation::Relu),
        rate: 0.5,
    };
    assert_eq!(net.rate, 0.5);
    assert!(net.act.is_some());
    let state = net.collect_state();
    assert!(state.contains_key("drop.calls"), "{state:?}");
    let mut moved = state.clone();
    moved.insert("drop.calls".into(), 7.into());
    net.restore_state(&moved).unwrap();
    assert_eq!(net.collect_state()["drop.calls"], 7);
    assert_eq!(net.collect_params().names(), ["dense.weight", "dense.bias"]);
}
