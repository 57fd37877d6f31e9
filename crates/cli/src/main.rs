//! `groupchat`: every call of the group-chat SDK from a shell, and `groupchat demo`, a live
//! scenario against a local server it starts itself. docs/cli.md has the commands, the
//! output forms and the exit codes.

mod args;
mod commands;
mod config;
mod demo;
mod output;

use clap::{CommandFactory as _, Parser as _};

use crate::args::{Cli, Command};
use crate::output::{CliError, Printer, exit_code};

fn main() {
    let cli = Cli::parse();
    let out = Printer { json: cli.json };
    if let Command::Completions { shell } = &cli.command {
        clap_complete::generate(
            *shell,
            &mut Cli::command(),
            "groupchat",
            &mut std::io::stdout(),
        );
        return;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("groupchat: cannot start: {e}");
            std::process::exit(1);
        }
    };
    let code = match runtime.block_on(run(cli, out)) {
        Ok(()) => 0,
        Err(e) => {
            out.error(&e);
            exit_code(e.status())
        }
    };
    // The SDK's tasks end with the runtime; a closed session has said goodbye already.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    std::process::exit(code);
}

async fn run(cli: Cli, out: Printer) -> Result<(), CliError> {
    let settings = config::merged(&cli.connection)?;
    if let Command::Demo(args) = cli.command {
        return demo::run(cli.connection.server.as_deref(), args).await;
    }
    let client = config::builder(&settings)?.connect().await?;
    // What the server kept for us (invitations while offline) first, so that e.g. a group
    // list includes the groups it brought.
    let watching = matches!(cli.command, Command::Watch);
    let work = async {
        client.settle().await?;
        commands::run(&client, cli.command, out).await
    };
    // Ctrl-C drops the command's future, so that a transfer removes its temporary file
    // (`watch` handles Ctrl-C itself, as its normal end).
    let result = if watching {
        work.await
    } else {
        let finished = tokio::select! {
            r = work => Some(r),
            _ = tokio::signal::ctrl_c() => None,
        };
        // Here the command's future is gone, and with it any temporary file.
        let Some(r) = finished else {
            client.close();
            eprintln!("groupchat: interrupted");
            std::process::exit(130);
        };
        r
    };
    client.close();
    // Let the stream close reach the server before the process ends.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    result
}
