//! SHUTDOWN and SIGTERM/SIGINT as Redis 7.0 (server.c `prepareForShutdown`,
//! `isReadyToShutdown`, `finishShutdown`, `cancelShutdown`, `abortShutdown`), on the control
//! executor.
//!
//! A shutdown pauses writes on every shard, then, unless NOW was given or `shutdown-timeout`
//! is 0, waits for every replica to acknowledge the master's offset: it asks them for their
//! offset (REPLCONF GETACK) and looks again every 100 ms until they all acknowledged it or
//! `shutdown-timeout` seconds passed. Then it finishes: logs the replicas still lagging,
//! saves when asked or configured, flushes the AOF and exits. A failed save (without FORCE)
//! or SHUTDOWN ABORT during the wait cancels it: writes resume and every SHUTDOWN waiting
//! gets `-ERR Errors trying to SHUTDOWN. Check logs.`.
//!
//! Redis blocks every client while it saves and exits; redcell's executors go on serving
//! reads meanwhile, so the write pause lasts from the start to the end (Redis pauses only
//! while waiting): nothing answered after the final save's cut can be lost. A second
//! SHUTDOWN, or a SHUTDOWN ABORT, arriving before the wait starts or while the shutdown
//! finishes waits for that step, as Redis would only read it afterwards.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{save_points, Persist};
use crate::error::Error;
use crate::repl::master::Master;
use crate::shard::pause::{Kind, Purpose};
use crate::util::time::now_ms;

/// SHUTDOWN's options (Redis's `SHUTDOWN_*` flags), also what `shutdown-on-sigint` and
/// `shutdown-on-sigterm` hold.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flags {
    /// Save even without save points.
    pub save: bool,
    /// Do not save even with save points.
    pub nosave: bool,
    /// Do not wait for lagging replicas.
    pub now: bool,
    /// Exit even if the final save failed.
    pub force: bool,
}

impl Flags {
    /// The flags of a `shutdown-on-sig*` value (`default`: none).
    pub fn from_config(value: &str) -> Flags {
        let mut f = Flags::default();
        for word in crate::config::flags(value) {
            match word {
                "save" => f.save = true,
                "nosave" => f.nosave = true,
                "now" => f.now = true,
                "force" => f.force = true,
                _ => {}
            }
        }
        f
    }
}

/// How often a waiting shutdown looks at the replicas (Redis's `serverCron` at `hz` 10).
const CHECK: Duration = Duration::from_millis(100);

/// How often a client waiting on a shutdown looks whether it was cancelled.
const POLL: Duration = Duration::from_millis(5);

/// Where a shutdown is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Started, not yet waiting nor finishing (looking whether replicas lag).
    Starting,
    /// Waiting for replicas until this unix time in ms (`shutdown_mstime`).
    Waiting(i64),
    /// Saving and exiting.
    Finishing,
}

/// A shutdown under way.
pub(super) struct Running {
    flags: Flags,
    phase: Cell<Phase>,
    /// Set once it was cancelled (ABORT, or the final save failed): it never finishes.
    cancelled: Cell<bool>,
    /// The signal that started it, if one did.
    signal: Option<&'static str>,
}

impl Persist {
    /// Milliseconds left of a shutdown's wait for replicas (INFO `shutdown_in_milliseconds`).
    pub(super) fn shutdown_in_ms(&self) -> Option<i64> {
        match self.shutdown.borrow().as_ref()?.phase.get() {
            Phase::Waiting(deadline) => Some((deadline - now_ms()).max(0)),
            _ => None,
        }
    }

    /// SIGTERM/SIGINT (from `cron`): a shutdown with the signal's configured flags, run as a
    /// task of its own so the cron goes on. A signal that arrives while a shutdown runs stays
    /// pending (a second SIGINT then exits at once) and is forgotten if that one is cancelled.
    pub(super) fn on_signal(self: &Rc<Self>) {
        let signal = self.shard.shared.shutdown_signal.load(Ordering::Relaxed);
        if signal == 0 || self.shutdown.borrow().is_some() {
            return;
        }
        let (name, directive) = if signal == libc::SIGINT {
            ("SIGINT", "shutdown-on-sigint")
        } else {
            ("SIGTERM", "shutdown-on-sigterm")
        };
        let flags = Flags::from_config(self.shard.shared.config().get(directive));
        self.start_shutdown(flags, Some(name));
    }

    /// `prepareForShutdown`: records the shutdown, pauses writes and starts the task that
    /// waits for replicas and finishes.
    fn start_shutdown(
        self: &Rc<Self>,
        mut flags: Flags,
        signal: Option<&'static str>,
    ) -> Rc<Running> {
        // Saving while the data is still loading would write half of it.
        if self
            .shard
            .shared
            .load_progress
            .loading
            .load(Ordering::Relaxed)
        {
            flags.save = false;
            flags.nosave = true;
        }
        eprintln!("User requested shutdown...");
        crate::util::daemon::notify_systemd("STOPPING=1\n");
        let run = Rc::new(Running {
            flags,
            phase: Cell::new(Phase::Starting),
            cancelled: Cell::new(false),
            signal,
        });
        *self.shutdown.borrow_mut() = Some(run.clone());
        let pause = &self.shard.shared.pause;
        let was_paused = pause.current().is_some();
        pause.pause(Purpose::Shutdown, i64::MAX >> 3, Kind::Write);
        glommio::spawn_local(self.clone().run_shutdown(run.clone(), was_paused)).detach();
        run
    }

    /// Waits for lagging replicas (bounded by `shutdown-timeout`), then finishes.
    async fn run_shutdown(self: Rc<Self>, run: Rc<Running>, was_paused: bool) {
        let timeout = self
            .shard
            .shared
            .config()
            .get_i64("shutdown-timeout")
            .max(0);
        if !run.flags.now && timeout != 0 && !ready().await {
            if run.cancelled.get() {
                return;
            }
            let deadline = now_ms().saturating_add(timeout.saturating_mul(1000));
            run.phase.set(Phase::Waiting(deadline));
            // Redis does not touch the stream while clients are paused (a failover's
            // offsets must hold still).
            if !was_paused {
                if let Some(m) = Master::current() {
                    m.request_acks();
                }
            }
            eprintln!("Waiting for replicas before shutting down.");
            loop {
                glommio::timer::sleep(CHECK).await;
                if run.cancelled.get() {
                    return;
                }
                if now_ms() >= deadline || ready().await {
                    break;
                }
            }
        }
        if run.cancelled.get() {
            return;
        }
        run.phase.set(Phase::Finishing);
        if self.finish_shutdown(&run).await.is_err() {
            eprintln!(
                "Errors trying to shut down the server. Check the logs for more information."
            );
            if let Some(name) = run.signal {
                eprintln!(
                    "{name} received but errors trying to shut down the server, check the logs for more information"
                );
            }
            self.cancel_shutdown(&run);
        }
    }

    /// `finishShutdown`: logs the lagging replicas, stops a running save, saves when asked
    /// or configured, flushes the AOF and exits. Returns only when the save failed without
    /// FORCE.
    async fn finish_shutdown(self: &Rc<Self>, run: &Running) -> Result<(), ()> {
        log_lagging_replicas().await;
        let flags = run.flags;
        let points = !save_points(self.shard.shared.config().get("save")).is_empty();
        if self.rdb.borrow().in_progress {
            eprintln!("There is a child saving an .rdb. Killing it!");
            self.stop_running_save().await;
        }
        if flags.save || (points && !flags.nosave) {
            eprintln!("Saving the final RDB snapshot before exiting.");
            crate::util::daemon::notify_systemd("STATUS=Saving the final RDB snapshot\n");
            if self.save_now().await.is_err() {
                if !flags.force {
                    eprintln!("Error trying to save the DB, can't exit.");
                    crate::util::daemon::notify_systemd(
                        "STATUS=Error trying to save the DB, can't exit.\n",
                    );
                    return Err(());
                }
                eprintln!("Error trying to save the DB, exiting anyway.");
            }
        }
        self.flush_aof().await;
        // A cluster change answered just before must still reach nodes.conf.
        crate::cluster::nodes_conf::flush(Duration::from_secs(2));
        crate::util::daemon::remove_pid_file();
        crate::util::daemon::remove_unix_socket(self.shard.shared.config().get("unixsocket"));
        eprintln!("redcell is now ready to exit, bye bye...");
        std::process::exit(0)
    }

    /// `cancelShutdown`: forgets the shutdown and any pending signal, resumes writes; the
    /// SHUTDOWN clients waiting on it get their error.
    fn cancel_shutdown(&self, run: &Running) {
        run.cancelled.set(true);
        let mut current = self.shutdown.borrow_mut();
        if current.as_ref().is_some_and(|c| std::ptr::eq(&**c, run)) {
            *current = None;
        }
        self.shard
            .shared
            .shutdown_signal
            .store(0, Ordering::Relaxed);
        self.shard.shared.pause.unpause(Purpose::Shutdown);
    }

    /// Waits while the shutdown under way (if any) is neither waiting nor over: Redis reads
    /// nothing else until it is. Returns the one waiting for replicas, if any.
    async fn settled_shutdown(&self) -> Option<Rc<Running>> {
        loop {
            let run = self.shutdown.borrow().clone()?;
            if matches!(run.phase.get(), Phase::Waiting(_)) {
                return Some(run);
            }
            glommio::timer::sleep(POLL).await;
        }
    }
}

/// `isReadyToShutdown`: whether every replica acknowledged the master's offset (true
/// without replicas).
async fn ready() -> bool {
    let Some(m) = Master::current() else {
        return true;
    };
    if m.summary().replicas.is_empty() {
        return true;
    }
    let offset = m.offset_after_now().await;
    m.summary().replicas.iter().all(|r| r.3 == offset)
}

/// `finishShutdown`'s report of the replicas that did not acknowledge the master's offset.
async fn log_lagging_replicas() {
    let Some(m) = Master::current() else {
        return;
    };
    if m.summary().replicas.is_empty() {
        return;
    }
    let offset = m.offset_after_now().await;
    let replicas = m.summary().replicas;
    let mut lagging = 0;
    for (host, port, state, acked, since_ack) in &replicas {
        if *acked == offset {
            continue;
        }
        lagging += 1;
        let lag = if *state == "online" { *since_ack } else { 0 };
        eprintln!(
            "Lagging replica {host}:{port} reported offset {} behind master, lag={lag}, state={state}.",
            offset - acked
        );
    }
    eprintln!(
        "{} of {} replicas are in sync when shutting down.",
        replicas.len() - lagging,
        replicas.len()
    );
}

/// SHUTDOWN (not ABORT): starts a shutdown with `flags`, or joins the one under way (whose
/// flags stay), and waits for it. Returns only if it was cancelled.
pub async fn shutdown(shard: &Rc<crate::shard::Shard>, flags: Flags) -> Error {
    super::on_control(shard, move |p| async move {
        let current = p.shutdown.borrow().clone();
        let run = match current {
            Some(run) => run,
            None => p.start_shutdown(flags, None),
        };
        while !run.cancelled.get() {
            glommio::timer::sleep(POLL).await;
        }
        Error::msg("Errors trying to SHUTDOWN. Check logs.")
    })
    .await
}

/// SHUTDOWN ABORT (`abortShutdown`): cancels a shutdown waiting for replicas, or forgets a
/// signal not acted on yet. False when there is neither.
pub async fn abort(shard: &Rc<crate::shard::Shard>) -> bool {
    super::on_control(shard, |p| async move {
        if let Some(run) = p.settled_shutdown().await {
            p.cancel_shutdown(&run);
        } else if p.shard.shared.shutdown_signal.swap(0, Ordering::Relaxed) == 0 {
            return false;
        }
        eprintln!("Shutdown manually aborted.");
        true
    })
    .await
}
