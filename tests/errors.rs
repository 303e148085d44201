//! Bad inputs return `Error`, never panic.

use boson::nn::{Block, Dense, Embedding, Forward, Initializer, LoadOptions};
use boson::{autograd, Device, Error, Tensor};

fn t(shape: &[usize]) -> Tensor {
    Tensor::ones(shape, Device::Cpu).unwrap()
}

#[test]
fn shape_errors_name_the_shapes() {
    let e = t(&[2, 3]).matmul(&t(&[4, 5])).unwrap_err();
    assert!(matches!(e, Error::ShapeMismatch { .. }));
    assert!(
        e.to_string().contains("[2, 3]") && e.to_string().contains("[4, 5]"),
        "{e}"
    );
    assert!(matches!(
        t(&[2, 3]).add(&t(&[4])).unwrap_err(),
        Error::ShapeMismatch { .. }
    ));
    // Transposed operands: [2,3]ᵀ·[2,4] is fine, [2,3]·[2,4]ᵀ is not.
    assert_eq!(
        t(&[2, 3])
            .matmul_t(&t(&[2, 4]), true, false)
            .unwrap()
            .shape(),
        &[3, 4]
    );
    assert!(matches!(
        t(&[2, 3]).matmul_t(&t(&[2, 4]), false, true).unwrap_err(),
        Error::ShapeMismatch { .. }
    ));
    assert!(t(&[2, 3]).reshape(&[4]).is_err());
    assert!(t(&[2, 3]).sum_axis(2, false).is_err());
    assert!(t(&[2, 3]).slice_axis(1, 2, 5).is_err());
    assert!(t(&[2, 3]).permute(&[0, 0]).is_err());
    assert!(Tensor::from_vec(vec![1.0; 5], &[2, 3]).is_err());
    assert!(Tensor::concat(&[&t(&[2, 3]), &t(&[3, 3])], 1).is_err());
    assert!(t(&[2]).dropout(1.5, 0).is_err());
    assert!(t(&[2]).clip(1.0, -1.0).is_err());
}

#[test]
fn embedding_index_out_of_range_or_negative() {
    let emb = Embedding::new(5, 2);
    emb.initialize(&Initializer::Uniform(0.1), Device::Cpu)
        .unwrap();
    for bad in [5i64, -1, 1_000_000] {
        let idx = Tensor::from_vec_i64(vec![0, bad], &[2]).unwrap();
        match emb.forward(&idx).unwrap_err() {
            Error::IndexOutOfRange { index, size, .. } => {
                assert_eq!(index, bad);
                assert_eq!(size, 5);
            }
            e => panic!("unexpected {e}"),
        }
    }
    let float_idx = Tensor::from_vec(vec![0.0], &[1]).unwrap();
    assert!(matches!(
        emb.forward(&float_idx).unwrap_err(),
        Error::DTypeMismatch { .. }
    ));
}

#[test]
fn uninitialised_parameter_and_bad_loss_labels() {
    let d = Dense::new(2);
    let e = d.forward(&t(&[1, 3])).unwrap_err();
    assert!(e.to_string().contains("initial"), "{e}");
    let labels = Tensor::from_vec_i64(vec![0, 7], &[2]).unwrap();
    use boson::loss::{Loss, SoftmaxCrossEntropyLoss};
    let e = SoftmaxCrossEntropyLoss::new()
        .forward(&t(&[2, 3]), &labels, None)
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::IndexOutOfRange {
                index: 7,
                size: 3,
                ..
            }
        ),
        "{e}"
    );
    // pick: an index past the last axis, and a count that is not one per row.
    let e = t(&[2, 3]).pick(&labels).unwrap_err();
    assert!(
        matches!(
            e,
            Error::IndexOutOfRange {
                index: 7,
                size: 3,
                ..
            }
        ),
        "{e}"
    );
    let e = t(&[2, 3])
        .pick(&Tensor::from_vec_i64(vec![0], &[1]).unwrap())
        .unwrap_err();
    assert!(e.to_string().contains("one i64 index per row"), "{e}");
    // fill_at: a position past the end, and positions that are not i64.
    let e = t(&[2, 3]).fill_at(&labels, 0.0).unwrap_err();
    assert!(
        matches!(
            e,
            Error::IndexOutOfRange {
                index: 7,
                size: 6,
                ..
            }
        ),
        "{e}"
    );
    assert!(t(&[2, 3]).fill_at(&t(&[1]), 0.0).is_err());
    assert!(boson::loss::HuberLoss::new(0.0).is_err());
    let x = t(&[2]).attach_grad();
    let y = autograd::record(|| x.square()).unwrap();
    assert!(y.backward_with(&t(&[3])).is_err());
}

fn model() -> Dense {
    let d = Dense::new(2).in_units(3);
    d.initialize(&Initializer::xavier(3.0), Device::Cpu)
        .unwrap();
    d
}

#[test]
fn parameter_files_round_trip_and_report_every_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("net.safetensors");
    let a = model();
    a.save_parameters(&path).unwrap();
    let b = model();
    b.load_parameters(&path, Device::Cpu).unwrap();
    assert_eq!(
        a.weight.data().unwrap().to_vec_f32().unwrap(),
        b.weight.data().unwrap().to_vec_f32().unwrap()
    );
    // No temp file is left behind.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

    // Misshaped weight + missing bias.
    let other = Dense::new(4).in_units(3).use_bias(false);
    other.initialize(&Initializer::Zero, Device::Cpu).unwrap();
    let p2 = dir.path().join("other.safetensors");
    other.save_parameters(&p2).unwrap();
    let e = b.load_parameters(&p2, Device::Cpu).unwrap_err();
    match &e {
        Error::ParameterMismatch { problems, .. } => {
            assert_eq!(problems.len(), 2, "{e}");
            assert!(problems
                .iter()
                .any(|p| p.contains("weight") && p.contains("[4, 3]")));
            assert!(problems
                .iter()
                .any(|p| p.contains("missing") && p.contains("bias")));
        }
        e => panic!("unexpected {e}"),
    }
    // The failed load changed nothing.
    assert_eq!(
        a.weight.data().unwrap().to_vec_f32().unwrap(),
        b.weight.data().unwrap().to_vec_f32().unwrap()
    );
    // Extra parameter, then allowed with ignore_extra.
    let small = Dense::new(2).in_units(3).use_bias(false);
    assert!(small
        .load_parameters(&path, Device::Cpu)
        .unwrap_err()
        .to_string()
        .contains("extra"));
    small
        .collect_params()
        .load(
            &path,
            LoadOptions {
                ignore_extra: true,
                ..Default::default()
            },
        )
        .unwrap();
    // Missing bias: an error by default, accepted with allow_missing.
    let p3 = dir.path().join("weight_only.safetensors");
    small.save_parameters(&p3).unwrap();
    let with_bias = model();
    let e = with_bias.load_parameters(&p3, Device::Cpu).unwrap_err();
    assert!(e.to_string().contains("missing parameter 'bias'"), "{e}");
    let opts = LoadOptions {
        allow_missing: true,
        ..Default::default()
    };
    with_bias.collect_params().load(&p3, opts).unwrap();
    assert_eq!(
        with_bias.weight.data().unwrap().to_vec_f32().unwrap(),
        small.weight.data().unwrap().to_vec_f32().unwrap()
    );
}

#[test]
fn truncated_and_foreign_files_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("net.safetensors");
    let a = model();
    a.save_parameters(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let cut = dir.path().join("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() - 5]).unwrap();
    let e = model().load_parameters(&cut, Device::Cpu).unwrap_err();
    assert!(matches!(e, Error::Format { .. }), "{e}");
    let junk = dir.path().join("junk.safetensors");
    std::fs::write(&junk, b"this is not a tensor file at all").unwrap();
    assert!(matches!(
        model().load_parameters(&junk, Device::Cpu).unwrap_err(),
        Error::Format { .. }
    ));
    let e = model()
        .load_parameters(dir.path().join("absent"), Device::Cpu)
        .unwrap_err();
    assert!(matches!(e, Error::Io { .. }));
}

#[test]
fn trainer_state_round_trip() {
    use boson::optim::{Adam, Sgd, Trainer};
    let dir = tempfile::tempdir().unwrap();
    let net = model();
    let x = t(&[1, 3]);
    let mut tr = Trainer::new(net.collect_params(), Adam::new(0.01)).unwrap();
    autograd::record(|| net.forward(&x)?.sum_all())
        .unwrap()
        .backward()
        .unwrap();
    tr.step(1).unwrap();
    let p = dir.path().join("trainer.states");
    tr.save_states(&p).unwrap();
    let mut tr2 = Trainer::new(net.collect_params(), Adam::new(0.01)).unwrap();
    tr2.load_states(&p).unwrap();
    assert_eq!(tr2.num_update(), 1);
    let mut wrong = Trainer::new(net.collect_params(), Sgd::new(0.01)).unwrap();
    assert!(wrong.load_states(&p).is_err());
}

#[test]
fn an_unusable_cuda_device_is_an_error_with_its_reason() {
    // No machine has a thousand GPUs: the reason is the missing driver, NVRTC, the
    // missing feature, or that ordinal.
    let err = boson::Device::new_cuda(999).unwrap_err().to_string();
    assert!(err.starts_with("cuda"), "{err}");
    assert!(
        ["driver", "NVRTC", "feature", "999"]
            .iter()
            .any(|why| err.contains(why)),
        "{err}"
    );
    assert!(!boson::Device::cuda_is_available(999));
    assert_eq!(boson::Device::cuda_if_available(999), boson::Device::Cpu);
}

#[test]
fn sizes_that_overflow_or_exceed_memory_are_errors_not_aborts() {
    // The product of the dimensions does not fit in usize.
    let e = Tensor::zeros(&[usize::MAX, 2], Device::Cpu).unwrap_err();
    assert!(
        e.to_string().contains(&format!("[{}, 2]", usize::MAX)),
        "{e}"
    );
    assert!(
        Tensor::from_vec(vec![], &[1 << 63, 2, 0]).is_ok(),
        "an empty shape is fine"
    );
    assert!(t(&[4]).reshape(&[1 << 62, 1 << 62]).is_err());
    // Representable but far beyond this machine's memory: refused before allocating.
    let e = Tensor::zeros(&[1 << 40], Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("1099511627776 elements") && e.contains("limit"),
        "{e}"
    );
    // An embedding table of 2^62 columns (2^63 elements wrapped to 0 before).
    let emb = Embedding::new(10, 1 << 62);
    let e = emb
        .initialize(&Initializer::Normal(0.1), Device::Cpu)
        .unwrap_err();
    assert!(e.to_string().contains("4611686018427387904"), "{e}");
    let emb = Embedding::new(2, 1 << 63);
    assert!(emb.initialize(&Initializer::Zero, Device::Cpu).is_err());
}

#[test]
fn the_allocation_limit_can_be_set() {
    // 8 GiB: no other test allocates that much, so running beside them is safe.
    boson::tensor::set_max_tensor_bytes(Some(8 << 30));
    let e = Tensor::zeros(&[1 << 32], Device::Cpu)
        .unwrap_err()
        .to_string();
    boson::tensor::set_max_tensor_bytes(None);
    assert!(
        e.contains("set_max_tensor_bytes") && e.contains("16.0 GiB"),
        "{e}"
    );
    assert_ne!(boson::tensor::max_tensor_bytes(), Some(8 << 30));
}

#[test]
fn a_killed_writes_temporary_file_is_removed_by_the_next_write() {
    let dir = tempfile::tempdir().unwrap();
    let orphan = dir.path().join(".net.safetensors.tmp-4000000");
    std::fs::write(&orphan, vec![0u8; 1024]).unwrap();
    let other = dir.path().join(".other.safetensors.tmp-4000000");
    std::fs::write(&other, b"not ours").unwrap();
    let net = Dense::new(1).in_units(1);
    net.initialize(&Initializer::Zero, Device::Cpu).unwrap();
    net.save_parameters(dir.path().join("net.safetensors"))
        .unwrap();
    assert!(!orphan.exists());
    assert!(other.exists(), "another file's temporary is left alone");
}

/// In a child process (an address-space limit would constrain every test beside it): with
/// `RLIMIT_AS` at the address space in use + 768 MiB, the memory guard reports at most
/// 768 MiB and a 2 GiB tensor is an error, where it aborted in the allocator when the
/// guard read only MemAvailable.
#[cfg(target_os = "linux")]
#[test]
fn an_address_space_limit_bounds_the_allocation_guard() {
    const CHILD: &str = "BOSON_TEST_RLIMIT_AS_CHILD";
    const HEADROOM: u64 = 768 << 20;
    if std::env::var_os(CHILD).is_some() {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let vm_kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmSize:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap();
        let limit = libc::rlimit {
            rlim_cur: vm_kib * 1024 + HEADROOM,
            rlim_max: libc::RLIM_INFINITY,
        };
        // SAFETY: setrlimit reads one rlimit through a valid pointer; it lowers this
        // child process's soft limit only.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &limit) }, 0);
        let guard = boson::tensor::max_tensor_bytes().unwrap();
        assert!(guard <= HEADROOM, "guard {guard} bytes");
        let e = Tensor::zeros(&[1 << 29], Device::Cpu)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("exceed the allocation limit") && e.contains("RLIMIT_AS"),
            "{e}"
        );
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "an_address_space_limit_bounds_the_allocation_guard",
            "--test-threads=1",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "child: {:?}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 passed"));
}
