//! The model test across faults, short form: 30 sessions of writes,
//! rollbacks, checkpoints, restarts, injected I/O errors and SIGKILLed
//! children, with live == replay == model checked throughout and no
//! acked event lost. The long form (2,500 sessions) is
//! `reliability --full --only model_faults`; `SOLOSTATE_MODEL_SEED` and
//! `SOLOSTATE_MODEL_SESSIONS` rerun or lengthen this one.

use solostate_reliability::model_faults::{Config, run};

#[test]
fn live_replay_and_model_agree_across_faults_restarts_and_kills() {
    let env = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(default)
    };
    let config = Config {
        sessions: env("SOLOSTATE_MODEL_SESSIONS", 30),
        seed: env("SOLOSTATE_MODEL_SEED", 0x5EED_F417),
        child: env!("CARGO_BIN_EXE_reliability").into(),
    };
    let figures = run(&config).unwrap();
    eprintln!("{figures:?}");
    assert_eq!(figures.lost, 0);
    assert!(figures.kill_cycles > 0 && figures.fault_sessions > 0 && figures.restarts > 0);
    assert!(
        figures.injected.total() > 0,
        "no fault fired: the run proved little"
    );
}
