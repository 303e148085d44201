//! Save and load the model folder:
//!
//! ```text
//! DIR/config.json          model kind and sizes, hyperparameters, data summary, metrics
//! DIR/model.safetensors    the parameters (Block::save_parameters)
//! DIR/users.json           user index -> original customer id (a JSON list)
//! DIR/items.json           item index -> original product id (a JSON list)
//! DIR/interactions.safetensors  what each user rated, each item's count of ratings
//! DIR/*.svg                the run's pictures (charts.rs): training curve, rating
//!                          histogram, long tail, predicted vs actual
//! ```
//!
//! Integrity (format 2 on): config.json records the SHA-256 of every other file the model
//! is loaded from (`files_sha256`; the pictures are not read back and not covered) and of
//! its own contents without that field (`config_sha256`, over the values, not the
//! spacing). [`load`] checks them all first and names the file that differs. A folder of
//! format 2 must carry `files_sha256`, `config_sha256` and `id_fingerprints`, so deleting
//! them does not switch the checks off; folders of format 1 (written before the hashes)
//! have none and load as before. The hashes live in the folder: they catch damage and
//! accidental edits, not an edit that also rewrites them.

use crate::data::DataSummary;
use crate::evaluate::Ranking;
use crate::model::{build, ModelKind, ModelSpec, RecModel};
use crate::train::{History, TrainConfig};
use boson::nn::Block;
use boson::ratings::IndexMap;
use boson::{Device, Error, Result, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

/// Bumped when the folder layout changes, so old folders fail clearly. Format 2 added the
/// hashes, which it requires.
pub const FORMAT_VERSION: u32 = 2;

/// The oldest format [`load`] reads: 1, from before the hashes.
pub const OLDEST_FORMAT_VERSION: u32 = 1;

/// The parameter file of a model folder.
pub const MODEL_FILE: &str = "model.safetensors";
/// The model's description, which holds the other files' hashes.
pub const CONFIG_FILE: &str = "config.json";
/// The field of config.json that holds the hash of config.json's other fields.
pub const CONFIG_HASH_FIELD: &str = "config_sha256";

/// `config.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub format_version: u32,
    pub model: ModelSpec,
    pub train: TrainConfig,
    pub data: DataSummary,
    pub history: History,
    #[serde(deserialize_with = "nan_if_null")]
    pub test_rmse: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub test_mae: f64,
    pub ranking: Ranking,
    /// Why the saved model is not the trained one: the guard saved the bias baseline
    /// because the trained model was no better on validation (absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guard: Option<String>,
    /// Fingerprints of users.json and items.json, so a reordered or swapped id file is
    /// refused (absent in folders from before they were written).
    #[serde(default)]
    pub id_fingerprints: Option<(String, String)>,
    /// File name -> SHA-256 of every file [`load`] reads besides config.json (format 2 on;
    /// written by [`save`], whatever the caller passes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files_sha256: Option<BTreeMap<String, String>>,
    /// SHA-256 of config.json's values without this field
    /// ([`boson::io::json_sha256_without`]); format 2 on, written by [`save`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_sha256: Option<String>,
}

/// FNV-1a over the ids in order: stable across Rust versions and machines.
pub fn fingerprint(ids: &[String]) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for id in ids {
        for &b in id.as_bytes().iter().chain(&[0xff]) {
            h = (h ^ u64::from(b)).wrapping_mul(0x100000001b3);
        }
    }
    format!("{h:016x}")
}

/// A loaded model with what is needed to answer requests by original ids.
pub struct LoadedModel {
    pub model: Arc<dyn RecModel>,
    pub config: ModelConfig,
    pub users: HashMap<String, i64>,
    pub items: HashMap<String, i64>,
    /// Item index -> original id (items.json).
    pub item_ids: Vec<String>,
    /// Absent in folders from before recommendations were served.
    pub interactions: Option<Interactions>,
    pub device: Device,
}

/// Reads a metric that may have been written as `null`: serde_json writes NaN and
/// infinities as `null`, and they read back as NaN (a run whose metric was NaN still
/// writes a folder that loads).
pub fn nan_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::io(path, e)
}

fn to_json(path: &Path, value: &impl Serialize) -> Result<Vec<u8>> {
    serde_json::to_vec_pretty(value).map_err(|e| Error::Format {
        path: path.to_path_buf(),
        msg: e.to_string(),
    })
}

fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    boson::io::write_atomic(path, &to_json(path, value)?)
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let text = std::fs::read(path).map_err(io(path))?;
    serde_json::from_slice(&text).map_err(|e| Error::Format {
        path: path.to_path_buf(),
        msg: e.to_string(),
    })
}

/// Writes the whole folder as one unit: into a temporary sibling first, where `check`
/// sees it (the pipeline loads it back and compares predictions), and only then in place
/// of the previous folder ([`boson::io::write_folder_atomic`]). A failed check or a killed
/// process leaves the previous folder as it was.
pub fn save(
    dir: &Path,
    contents: &Contents,
    check: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    save_observed(dir, contents, check, |_| {})
}

/// [`save`], calling `on_step` at each step of the folder swap (for crash tests).
pub fn save_observed(
    dir: &Path,
    contents: &Contents,
    check: impl FnOnce(&Path) -> Result<()>,
    on_step: impl FnMut(boson::io::SaveStep),
) -> Result<()> {
    let Contents {
        model,
        config,
        users,
        items,
        interactions,
        pictures,
    } = contents;
    // Whatever is written must load: checked before anything is written.
    serde_json::to_value(config)
        .and_then(serde_json::from_value::<ModelConfig>)
        .map_err(|e| Error::Format {
            path: dir.join("config.json"),
            msg: format!("the model description would not load back, nothing written: {e}"),
        })?;
    let mut config = ModelConfig {
        format_version: FORMAT_VERSION,
        id_fingerprints: Some((fingerprint(users.ids()), fingerprint(items.ids()))),
        files_sha256: None,
        config_sha256: None,
        ..(*config).clone()
    };
    boson::io::write_folder_atomic_observed(
        dir,
        |tmp| {
            model.collect_params().save(tmp.join(MODEL_FILE))?;
            write_json(&tmp.join("users.json"), &users.ids())?;
            write_json(&tmp.join("items.json"), &items.ids())?;
            let mut hashed = vec![MODEL_FILE, "users.json", "items.json"];
            if let Some(interactions) = interactions {
                interactions.save(&tmp.join(INTERACTIONS))?;
                hashed.push(INTERACTIONS);
            }
            for (name, svg) in pictures.iter() {
                boson::io::write_atomic(&tmp.join(name), svg.as_bytes())?;
            }
            // The hashes of the files as they are on disk, then config.json, last.
            let mut files = BTreeMap::new();
            for name in hashed {
                files.insert(name.to_string(), boson::io::file_sha256(&tmp.join(name))?);
            }
            config.files_sha256 = Some(files);
            let path = tmp.join(CONFIG_FILE);
            let unsealed = to_json(&path, &config)?;
            config.config_sha256 = Some(config_sha256(&path, &unsealed)?);
            boson::io::write_atomic(&path, &to_json(&path, &config)?)?;
            check(tmp)
        },
        on_step,
    )
}

/// The hash of config.json's `text` without its own hash field.
fn config_sha256(path: &Path, text: &[u8]) -> Result<String> {
    boson::io::json_sha256_without(text, CONFIG_HASH_FIELD).map_err(|msg| Error::Format {
        path: path.to_path_buf(),
        msg,
    })
}

/// What a hash mismatch tells the user to do.
const MODIFIED: &str = "the model folder was modified after it was written: restore it from a \
                        copy, or train and save the model again";

/// Checks config.json (its `text`, read as `config`) and every file it lists against the
/// hashes recorded at save. Format 2 folders must have them all.
fn verify_hashes(dir: &Path, text: &[u8], config: &ModelConfig) -> Result<()> {
    let path = dir.join(CONFIG_FILE);
    let bad = |msg: String| Error::Format {
        path: path.clone(),
        msg,
    };
    if config.format_version >= 2 {
        for (field, present) in [
            (CONFIG_HASH_FIELD, config.config_sha256.is_some()),
            ("files_sha256", config.files_sha256.is_some()),
            ("id_fingerprints", config.id_fingerprints.is_some()),
        ] {
            if !present {
                return Err(bad(format!(
                    "a format {} folder must record {field}, and this one does not; {MODIFIED}",
                    config.format_version
                )));
            }
        }
    }
    if let Some(want) = &config.config_sha256 {
        let found = config_sha256(&path, text)?;
        if !found.eq_ignore_ascii_case(want) {
            return Err(bad(format!(
                "its contents do not match the {CONFIG_HASH_FIELD} recorded in it (recorded \
                 {want}, now {found}); {MODIFIED}"
            )));
        }
    }
    let Some(files) = &config.files_sha256 else {
        return Ok(());
    };
    for required in [MODEL_FILE, "users.json", "items.json"] {
        if !files.contains_key(required) {
            return Err(bad(format!(
                "files_sha256 does not list {required}; {MODIFIED}"
            )));
        }
    }
    if !files.contains_key(INTERACTIONS) && dir.join(INTERACTIONS).exists() {
        return Err(Error::Format {
            path: dir.join(INTERACTIONS),
            msg: format!("the file was not written with this folder; {MODIFIED}"),
        });
    }
    for (name, want) in files {
        let plain = Path::new(name)
            .file_name()
            .is_some_and(|f| f == name.as_str());
        if !plain || name == CONFIG_FILE {
            return Err(bad(format!(
                "files_sha256 lists {name:?}, which is not a file of the folder; {MODIFIED}"
            )));
        }
        boson::io::verify_file_sha256(&dir.join(name), want, MODIFIED)?;
    }
    Ok(())
}

/// Everything a model folder holds; [`save`] writes it.
pub struct Contents<'a> {
    pub model: &'a dyn RecModel,
    pub config: &'a ModelConfig,
    pub users: &'a IndexMap,
    pub items: &'a IndexMap,
    /// What each user rated and how often each item was rated, for recommendations.
    pub interactions: Option<&'a Interactions>,
    /// `(file name, SVG)` pictures.
    pub pictures: &'a [(&'a str, String)],
}

/// The file of [`Interactions`] in a model folder.
pub const INTERACTIONS: &str = "interactions.safetensors";

/// What serving recommendations needs besides the model: each user's rated items (left
/// out of their recommendations) and each item's count of ratings (the cold-start
/// answer is the most rated).
#[derive(Clone, Debug, PartialEq)]
pub struct Interactions {
    /// `rated[user]`: item indices, sorted.
    pub rated: Vec<Vec<u32>>,
    /// Ratings per item in train.
    pub item_counts: Vec<u32>,
}

impl Interactions {
    fn save(&self, path: &Path) -> Result<()> {
        let mut offsets = vec![0i64];
        for r in &self.rated {
            offsets.push(offsets.last().copied().unwrap_or(0) + r.len() as i64);
        }
        let items: Vec<i64> = self.rated.iter().flatten().map(|&i| i64::from(i)).collect();
        let counts: Vec<i64> = self.item_counts.iter().map(|&c| i64::from(c)).collect();
        let tensor = |v: Vec<i64>| {
            let n = v.len();
            Tensor::from_vec_i64(v, &[n])
        };
        boson::io::save_tensors(
            path,
            &[
                ("rated_offsets".to_string(), tensor(offsets)?),
                ("rated_items".to_string(), tensor(items)?),
                ("item_counts".to_string(), tensor(counts)?),
            ],
            None,
        )
    }

    /// Reads the file, checked against the folder's sizes.
    fn load(path: &Path, users: usize, items: usize) -> Result<Interactions> {
        let (tensors, _) = boson::io::load_tensors(path)?;
        let bad = |msg: String| Error::Format {
            path: path.to_path_buf(),
            msg,
        };
        let get = |name: &str| -> Result<Vec<i64>> {
            tensors
                .iter()
                .find(|(n, _)| n == name)
                .ok_or_else(|| bad(format!("no tensor {name:?}")))?
                .1
                .to_vec_i64()
        };
        let (offsets, flat, counts) = (
            get("rated_offsets")?,
            get("rated_items")?,
            get("item_counts")?,
        );
        let monotone = offsets.windows(2).all(|w| w[0] <= w[1]);
        if offsets.len() != users + 1
            || offsets.first() != Some(&0)
            || offsets.last() != Some(&(flat.len() as i64))
            || !monotone
            || counts.len() != items
        {
            return Err(bad(format!(
                "sizes do not match the model's {users} users and {items} items"
            )));
        }
        let item = |i: i64| u32::try_from(i).ok().filter(|&i| (i as usize) < items);
        let mut rated = Vec::with_capacity(users);
        for w in offsets.windows(2) {
            let list: Option<Vec<u32>> = flat[w[0] as usize..w[1] as usize]
                .iter()
                .map(|&i| item(i))
                .collect();
            let list = list.ok_or_else(|| bad("an item index out of range".into()))?;
            if !list.windows(2).all(|p| p[0] < p[1]) {
                return Err(bad("a user's items are not sorted and unique".into()));
            }
            rated.push(list);
        }
        let item_counts = counts
            .iter()
            .map(|&c| u32::try_from(c).map_err(|_| bad(format!("item count {c}"))))
            .collect::<Result<_>>()?;
        Ok(Interactions { rated, item_counts })
    }
}

/// Loads a folder written by [`save`]. With `expect`, the folder must hold that model kind
/// and embedding size, else a clear error names both.
pub fn load(dir: &Path, expect: Option<(ModelKind, usize)>, device: Device) -> Result<LoadedModel> {
    let dir = &boson::io::existing_folder(dir);
    let config_path = dir.join(CONFIG_FILE);
    let text = std::fs::read(&config_path).map_err(io(&config_path))?;
    let config: ModelConfig = serde_json::from_slice(&text).map_err(|e| Error::Format {
        path: config_path.clone(),
        msg: e.to_string(),
    })?;
    if !(OLDEST_FORMAT_VERSION..=FORMAT_VERSION).contains(&config.format_version) {
        return Err(Error::Format {
            path: config_path,
            msg: format!(
                "model folder format {} but this program reads formats \
                 {OLDEST_FORMAT_VERSION} to {FORMAT_VERSION}",
                config.format_version
            ),
        });
    }
    // Every file is checked against its hash before anything is read from it.
    verify_hashes(dir, &text, &config)?;
    let spec = config.model;
    if let Some((kind, k)) = expect {
        if spec.kind != kind || spec.num_embeddings != k {
            return Err(Error::InvalidArgument(format!(
                "{} holds a {} model with {} embeddings, but a {} model with {} embeddings was asked for",
                dir.display(),
                spec.kind.name(),
                spec.num_embeddings,
                kind.name(),
                k
            )));
        }
    }
    let user_ids: Vec<String> = read_json(&dir.join("users.json"))?;
    let item_ids: Vec<String> = read_json(&dir.join("items.json"))?;
    let index = |ids: &[String], file: &str| -> Result<HashMap<String, i64>> {
        let mut map = HashMap::with_capacity(ids.len());
        for (i, id) in ids.iter().enumerate() {
            if let Some(first) = map.insert(id.clone(), i as i64) {
                return Err(Error::Format {
                    path: dir.join(file),
                    msg: format!("id {id:?} appears twice (entries {first} and {i})"),
                });
            }
        }
        Ok(map)
    };
    // Unique ids first, then the fingerprint (a duplicate is the clearer message).
    let users = index(&user_ids, "users.json")?;
    let items = index(&item_ids, "items.json")?;
    if let Some((user_print, item_print)) = &config.id_fingerprints {
        for (file, ids, want) in [
            ("users.json", &user_ids, user_print),
            ("items.json", &item_ids, item_print),
        ] {
            if fingerprint(ids) != *want {
                return Err(Error::Format {
                    path: dir.join(file),
                    msg: "the ids are not the ones the model was trained with (reordered or \
                          from another folder)"
                        .into(),
                });
            }
        }
    }
    if user_ids.len() != spec.num_users || item_ids.len() != spec.num_items {
        return Err(Error::Format {
            path: dir.to_path_buf(),
            msg: format!(
                "index maps have {} users and {} items, config says {} and {}",
                user_ids.len(),
                item_ids.len(),
                spec.num_users,
                spec.num_items
            ),
        });
    }
    // Parameters are built from the config and then loaded strictly, so a parameter file
    // from another model kind or size is refused with every mismatch listed.
    let model = build(&spec, 0, device)?;
    let weights = dir.join(MODEL_FILE);
    model.load_parameters(&weights, device)?;
    for (name, p) in model.collect_params().iter() {
        if !p.data()?.all_finite()? {
            return Err(Error::Format {
                path: weights,
                msg: format!("parameter {name} holds NaN or infinite values; retrain the model"),
            });
        }
    }
    let path = dir.join(INTERACTIONS);
    let interactions = match path.exists() {
        true => Some(Interactions::load(&path, spec.num_users, spec.num_items)?),
        false => None,
    };
    Ok(LoadedModel {
        model,
        config,
        users,
        items,
        item_ids,
        interactions,
        device,
    })
}
