//! `dars review AGREEMENT [--run RUN_ID] [--port N] [--reviewer NAME]
//! [--second]`: the clerical review page on 127.0.0.1.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use super::{exit, load_agreement, load_site, Cli, Failure};
use crate::review::{self, server, Opened, ReviewError, Role};

#[derive(Debug, clap::Args)]
pub struct Args {
    pub agreement: PathBuf,
    /// The run whose queue to review (default: the latest run with one).
    #[arg(long)]
    pub run: Option<String>,
    /// Port on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 8421)]
    pub port: u16,
    /// Who is reviewing, as the decisions file records it (default: the
    /// login name).
    #[arg(long)]
    pub reviewer: Option<String>,
    /// Second review: only decisions not yet confirmed, without the first
    /// reviewer's answer.
    #[arg(long)]
    pub second: bool,
}

fn code_of(e: &ReviewError) -> u8 {
    match e {
        ReviewError::UnknownRun { .. } | ReviewError::Reviewer { .. } => exit::USAGE,
        ReviewError::Journal(review::JournalError::Io { .. })
        | ReviewError::Journal(review::JournalError::Locked { .. })
        | ReviewError::Write { .. } => exit::INTERNAL,
        _ => exit::INPUT,
    }
}

pub fn run(args: &Args, cli: &Cli) -> Result<(), Failure> {
    let site = load_site(cli)?;
    let agreement = load_agreement(&args.agreement, &site)?;
    let name = match &args.reviewer {
        Some(n) => n.clone(),
        None => std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .map_err(|_| {
                Failure::new(
                    exit::USAGE,
                    "no reviewer name: pass --reviewer NAME (the decisions file records who decided)",
                )
            })?,
    };
    let fail = |e: ReviewError| Failure::new(code_of(&e), e);
    let reviewer = review::check_reviewer(&name).map_err(fail)?;
    let opts = review::Options {
        run: args.run.clone(),
        reviewer,
        role: if args.second {
            Role::Second
        } else {
            Role::First
        },
        today: crate::config::today(),
    };
    let mut session = match review::open(&site, &agreement, &opts).map_err(fail)? {
        Opened::NoQueue { run_id } => {
            println!(
                "run {run_id} of {} queued nothing for review: there is nothing to review",
                agreement.meta.reference.as_str()
            );
            return Ok(());
        }
        Opened::Ready(s) => s,
    };
    let listener = server::bind(args.port).map_err(|e| Failure::new(exit::USAGE, e))?;
    let token = server::new_token().map_err(|e| Failure::new(exit::INTERNAL, e))?;
    let http = server::Server::new(listener, token).map_err(|e| Failure::new(exit::INTERNAL, e))?;
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .map_err(|e| Failure::new(exit::INTERNAL, format!("cannot catch signals: {e}")))?;
    }
    let c = session.review.counts();
    let (decisions, configured) = review::decisions_path(&agreement);
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "review of {} run {} ({}): {} study IDs, {} decided, {} left",
        session.reference,
        session.run_id,
        if args.second {
            "second review"
        } else {
            "first review"
        },
        c.studies,
        c.decided,
        c.left
    );
    for n in &session.notes {
        let _ = writeln!(out, "  {n}");
    }
    let _ = writeln!(
        out,
        "decisions are written to {} on exit (Ctrl-C) and by the page's Write button",
        decisions.display()
    );
    if !configured {
        let _ = writeln!(
            out,
            "  the agreement has no review_decisions yet: add `review_decisions = \"{}\"` under [cohort] in {} so that `dars run` applies them",
            decisions
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default(),
            args.agreement.display()
        );
    }
    let _ = writeln!(out, "open {}", http.url());
    let _ = out.flush();
    drop(out);
    let served = http.run(&mut session, &stop);
    let written = if !session.review.output_rows().is_empty() || decisions.exists() {
        Some(session.write_decisions())
    } else {
        None
    };
    served.map_err(|e| Failure::new(exit::INTERNAL, e))?;
    match written {
        Some(Ok(lines)) => println!("wrote {lines} decision lines to {}", decisions.display()),
        Some(Err(e)) => return Err(fail(e)),
        None => println!("no decisions yet: nothing written"),
    }
    Ok(())
}
