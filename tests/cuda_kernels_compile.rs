//! Compiles every `kernels/*.cu` to PTX for compute_90 with NVRTC (no GPU needed), and
//! to sm_90 machine code, where ptxas's register and shared-memory counts must fit a
//! 1024-thread block. Fails on any compile error, printing NVRTC's log. Skips, saying why, only when
//! libnvrtc cannot be loaded (see scripts/ci-nvrtc.sh for how CI provides it).
#![cfg(feature = "cuda")]

#[path = "common/skip.rs"]
#[macro_use]
mod skip;
use boson::cuda::{compile_ptx, expand_kernel_source, kernel_sources};

#[test]
fn every_kernel_file_compiles_for_compute_90() {
    // SAFETY: only tries to dlopen libnvrtc.
    if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        skip_note!("skipped: libnvrtc cannot be loaded (run scripts/ci-nvrtc.sh and export what it prints)");
        return;
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("kernels");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("kernels/ folder")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".cu"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no kernels/*.cu found");
    let mut failures = Vec::new();
    for name in &files {
        // The embedded copy must be the file on disk (include_str! of the same path), with
        // its generated parts spliced in.
        let embedded = kernel_sources().iter().find(|(n, _)| n == name);
        match embedded {
            None => failures.push(format!("{name}: not embedded in KERNEL_FILES")),
            Some((_, src)) => {
                let on_disk = std::fs::read_to_string(dir.join(name)).expect("read kernel");
                assert_eq!(
                    *src,
                    expand_kernel_source(&on_disk),
                    "{name}: embedded source differs from the file"
                );
                assert!(
                    !src.contains("#include"),
                    "{name}: an include NVRTC cannot find"
                );
            }
        }
        match compile_ptx(name, "compute_90") {
            Ok(ptx) => {
                let text = ptx.to_src();
                assert!(text.contains(".entry"), "{name}: PTX has no kernel entry");
                eprintln!("compiled {name}: {} bytes of PTX", text.len());
            }
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "kernel compile failures:\n{}",
        failures.join("\n")
    );
}

/// What ptxas reported for one kernel.
#[derive(Debug)]
struct Usage {
    kernel: String,
    registers: u32,
    smem: u32,
    spills: bool,
}

/// Compiles `src` to sm_90 machine code (NVRTC runs ptxas) and reads each kernel's
/// register count, static shared memory and spills from `--ptxas-options=-v`.
fn sm90_usage(name: &str, src: &str) -> Result<Vec<Usage>, String> {
    use cudarc::nvrtc::result;
    let src_c = std::ffi::CString::new(src).map_err(|e| e.to_string())?;
    let name_c = std::ffi::CString::new(name).map_err(|e| e.to_string())?;
    let prog = result::create_program(&src_c, Some(&name_c)).map_err(|e| format!("{e:?}"))?;
    let opts = ["--gpu-architecture=sm_90", "--ptxas-options=-v"];
    // SAFETY: prog comes from create_program and is destroyed once, below.
    let compiled = unsafe { result::compile_program(prog, &opts) };
    let log = unsafe { result::get_program_log(prog) }.map_err(|e| format!("{e:?}"))?;
    let _ = unsafe { result::destroy_program(prog) };
    let log: String = log
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8 as char)
        .collect();
    compiled.map_err(|e| format!("{e:?}:\n{log}"))?;
    // "Compiling entry function 'K' for 'sm_90'", then "... spill stores ...", then
    // "Used N registers, used B barriers, M bytes smem" (smem only when there is some).
    let mut out: Vec<Usage> = Vec::new();
    for line in log.lines() {
        if let Some(rest) = line.split("Compiling entry function '").nth(1) {
            let kernel = rest.split('\'').next().unwrap_or("").to_string();
            out.push(Usage {
                kernel,
                registers: 0,
                smem: 0,
                spills: false,
            });
        } else if let Some(u) = out.last_mut() {
            if line.contains("spill stores") {
                u.spills = !line.contains("0 bytes spill stores, 0 bytes spill loads");
            }
            if let Some(rest) = line.split("Used ").nth(1) {
                let num = |s: &str| s.trim().split(' ').next().and_then(|n| n.parse().ok());
                u.registers = num(rest).unwrap_or(u32::MAX);
                if let Some(smem) = rest.split(", ").find(|p| p.ends_with("bytes smem")) {
                    u.smem = num(smem).unwrap_or(u32::MAX);
                }
            }
        }
    }
    Ok(out)
}

/// Every kernel assembles for sm_90 (the H100/H200) within what a launch of 1024 threads
/// per block needs: at most 64 registers a thread (65536 per block), at most 48 KB of
/// static shared memory, no spills. Several kernels run 1024-thread blocks (the sort
/// tiles, scans, the one-block scatter-add, the middle-axis reductions); past these
/// limits their launch would fail on the GPU only. The table goes to stderr.
#[test]
fn every_kernel_fits_1024_thread_blocks_on_sm_90() {
    // SAFETY: only tries to dlopen libnvrtc.
    if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        skip_note!("skipped: libnvrtc cannot be loaded (run scripts/ci-nvrtc.sh and export what it prints)");
        return;
    }
    let mut problems = Vec::new();
    let mut table = String::from("kernel (sm_90): registers, static smem bytes\n");
    for (name, src) in kernel_sources() {
        match sm90_usage(name, src) {
            Err(e) => problems.push(format!("{name}: {e}")),
            Ok(usage) => {
                assert!(!usage.is_empty(), "{name}: ptxas reported no kernels");
                for u in usage {
                    table.push_str(&format!(
                        "  {name}:{} {} {}\n",
                        u.kernel, u.registers, u.smem
                    ));
                    if u.registers > 64 || u.smem > 48 * 1024 || u.spills {
                        problems.push(format!("{name}: {u:?}"));
                    }
                }
            }
        }
    }
    skip_note!("{}", table.trim_end());
    assert!(
        problems.is_empty(),
        "kernels over the limits:\n{}",
        problems.join("\n")
    );
}
