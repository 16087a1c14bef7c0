//! Running the kernel's own tools (`ip`, `nft`, `iptables`): bounded in time, killed if
//! they hang, stderr kept for the error. This is the one place processes are started, so
//! running the whole crate inside a network namespace is `ip netns exec NS ferrokube …`.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::Error;

/// How long one command may take (they are all local kernel operations).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(20);

/// Runs `program args…`, feeding `stdin` when given; returns stdout.
pub async fn run(program: &str, args: &[&str], stdin: Option<&str>) -> Result<String, Error> {
    run_timeout(program, args, stdin, COMMAND_TIMEOUT).await
}

/// [`run`] with a time limit of the caller's (a big `iptables-restore`).
pub async fn run_timeout(
    program: &str,
    args: &[&str],
    stdin: Option<&str>,
    limit: Duration,
) -> Result<String, Error> {
    let command = format!("{program} {}", args.join(" "));
    let fut = run_inner(program, args, stdin, &command);
    match tokio::time::timeout(limit, fut).await {
        Ok(result) => result,
        Err(_) => Err(Error::CommandTimeout {
            command,
            seconds: limit.as_secs(),
        }),
    }
}

async fn run_inner(
    program: &str,
    args: &[&str],
    stdin: Option<&str>,
    command: &str,
) -> Result<String, Error> {
    tracing::debug!(%command, "exec");
    let spawn_err = |source| Error::Spawn {
        command: command.to_string(),
        source,
    };
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(spawn_err)?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes()).await.map_err(spawn_err)?;
        // Dropping the pipe closes it: the tool sees EOF.
    }
    let output = child.wait_with_output().await.map_err(spawn_err)?;
    if !output.status.success() {
        return Err(Error::CommandFailed {
            command: command.to_string(),
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Runs a command whose output is JSON (`ip -j …`) and decodes it.
pub async fn run_json<T: serde::de::DeserializeOwned>(
    program: &str,
    args: &[&str],
) -> Result<T, Error> {
    let out = run(program, args, None).await?;
    // `ip -j` prints nothing at all (not `[]`) for an empty result on some versions.
    let text = if out.trim().is_empty() { "[]" } else { &out };
    serde_json::from_str(text).map_err(|source| Error::DecodeOutput {
        command: format!("{program} {}", args.join(" ")),
        source,
    })
}
