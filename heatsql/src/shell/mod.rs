//! The `heatsql` shell: rank 0 reads statements (`-c`, `-f`, an interactive prompt, or standard
//! input) and broadcasts each one; every rank runs it; rank 0 prints the result.

mod print;
mod progress;
mod split;
mod terminal;

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::error::Result;
use heatsql::{Comm, HeatContext};

pub use print::Format;
use split::Splitter;

/// Command line of `heatsql` (run it under `mpirun -n P`, `srun`, or alone as one rank).
#[derive(Parser, Debug)]
#[command(
    name = "heatsql",
    version,
    about = "Distributed SQL and array engine: run under mpirun/srun, or alone"
)]
pub struct Args {
    /// Run this SQL (several statements separated by `;`); repeatable, in order.
    #[arg(short = 'c', long = "command", value_name = "SQL")]
    pub commands: Vec<String>,
    /// Run the statements of this file; repeatable, in order (after every -c).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// Quiet: no banner, no footer.
    #[arg(short, long)]
    pub quiet: bool,
    /// Rows shown in table format (`inf`: all).
    #[arg(long, default_value = "40", value_parser = parse_maxrows)]
    pub maxrows: MaxRows,
    /// Compute device of the table functions: auto (a GPU when libtorch sees one), cpu or cuda
    /// (GPU local_rank % gpus); the default of `heatsql.device` (HEATSQL_DEVICE).
    #[arg(long)]
    pub device: Option<String>,
    /// Compute threads per rank (default: node cores / ranks on the node).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Print each statement of -c, -f or piped input (with the comments before it) before its
    /// result, like a transcript of the session.
    #[arg(short, long)]
    pub echo: bool,
    /// Print what each rank sees (libtorch and its CUDA support, GPUs, device, threads) and
    /// exit.
    #[arg(long)]
    pub info: bool,
    /// Memory limit per rank (for example `4G`, `512M`): sorts, aggregates, joins and MPI
    /// exchange buffers spill to the temp directory beyond it (the same as
    /// `SET datafusion.runtime.memory_limit = '4G'` first).
    #[arg(long, value_name = "SIZE")]
    pub memory_limit: Option<String>,
    /// Directory for spill files (default: the system temp directory; on a cluster a
    /// node-local disk). The same as `SET datafusion.runtime.temp_directory = 'DIR'` first.
    #[arg(long, value_name = "DIR")]
    pub temp_dir: Option<PathBuf>,
}

/// `--maxrows`: a number or `inf`.
#[derive(Debug, Clone, Copy)]
pub struct MaxRows(pub Option<usize>);

fn parse_maxrows(s: &str) -> std::result::Result<MaxRows, String> {
    if s.eq_ignore_ascii_case("inf") {
        return Ok(MaxRows(None));
    }
    s.parse::<usize>()
        .map(|n| MaxRows(Some(n)))
        .map_err(|_| format!("'{s}' is not a number of rows or 'inf'"))
}

/// What rank 0 sends to every rank.
enum Command {
    /// A statement, and where it came from (known on rank 0 only; not sent).
    Sql(String, Origin),
    /// A meta command line, and where it came from.
    Meta(String, Origin),
    Quit,
}

/// Where rank 0 read a command: for `--echo` and for naming a failed statement.
#[derive(Default)]
struct Origin {
    /// The comment lines before it.
    lead: String,
    /// `FILE:LINE` or `-c N:LINE` for scripts.
    at: Option<String>,
}

impl Command {
    fn encode(&self) -> Vec<u8> {
        let (tag, text) = match self {
            Command::Sql(s, _) => (b'S', s.as_str()),
            Command::Meta(s, _) => (b'M', s.as_str()),
            Command::Quit => (b'Q', ""),
        };
        let mut v = vec![tag];
        v.extend_from_slice(text.as_bytes());
        v
    }

    /// The input as `--echo` shows it: the comments before it, then the command.
    fn echo(&self) -> Option<String> {
        match self {
            Command::Sql(s, o) => Some(format!("{}{s};", o.lead)),
            Command::Meta(s, o) => Some(format!("{}{s}", o.lead)),
            Command::Quit => None,
        }
    }

    fn decode(bytes: &[u8]) -> Command {
        let text = String::from_utf8_lossy(bytes.get(1..).unwrap_or_default()).into_owned();
        match bytes.first() {
            Some(b'S') => Command::Sql(text, Origin::default()),
            Some(b'M') => Command::Meta(text, Origin::default()),
            _ => Command::Quit,
        }
    }
}

/// Where rank 0's statements come from.
enum Source {
    /// `-c` and `-f`, already split, in order; a statement that fails ends the run.
    Script(std::collections::VecDeque<Command>),
    /// An interactive prompt with history and multi-line statements.
    Prompt(
        Box<rustyline::DefaultEditor>,
        Splitter,
        std::collections::VecDeque<Command>,
    ),
    /// Standard input that is not a terminal: piped (`echo 'SELECT 1;' | heatsql`), or under
    /// mpirun, which forwards the user's typing to rank 0 through a pipe. With `prompt` (the
    /// user's terminal is at the other end, see [`terminal`]) prompts are shown and statements
    /// kept in the history file; the terminal does the line editing.
    Stdin {
        stdin: std::io::StdinLock<'static>,
        splitter: Splitter,
        queue: std::collections::VecDeque<Command>,
        prompt: bool,
    },
}

fn history_file() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".heatsql_history"))
}

/// Appends a statement to the history file in rustyline's format (for the prompt without a
/// terminal on standard input; rustyline's own prompt keeps its history itself).
fn append_history(sql: &str) {
    let Some(path) = history_file() else { return };
    let new = !path.exists();
    let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(&path) else {
        return;
    };
    let entry = sql.replace('\\', "\\\\").replace('\n', "\\n");
    let _ = writeln!(f, "{}{entry}", if new { "#V2\n" } else { "" });
}

/// Statements of a text: meta commands on their own line, SQL split at `;`.
/// `source` names the text in error messages (`None`: typed or piped input).
fn commands_of(
    text: &str,
    source: Option<&str>,
    out: &mut std::collections::VecDeque<Command>,
    splitter: &mut Splitter,
) -> usize {
    let at = |line: usize| source.map(|s| format!("{s}, line {line}"));
    // The line where the unfinished statement began.
    let mut start = 1;
    for (n, line) in text.lines().enumerate().map(|(i, l)| (i + 1, l)) {
        let was_pending = splitter.pending();
        if !was_pending && line.trim_start().starts_with('\\') {
            let origin = Origin {
                lead: splitter.take_lead(),
                at: at(n),
            };
            out.push_back(Command::Meta(line.trim().to_string(), origin));
            continue;
        }
        let done = splitter.push_line(line);
        for (i, st) in done.iter().enumerate() {
            let first = if i == 0 && was_pending { start } else { n };
            out.push_back(Command::Sql(
                st.sql.clone(),
                Origin {
                    lead: st.lead.clone(),
                    at: at(first),
                },
            ));
        }
        if splitter.pending() && (!was_pending || !done.is_empty()) {
            start = n;
        }
    }
    start
}

/// The unfinished last statement of a text (one without `;`), if any; it began on line
/// `start` of `source`.
fn last_of(splitter: &mut Splitter, source: Option<&str>, start: usize) -> Option<Command> {
    let mut command = Command::from(splitter.finish()?);
    if let (Command::Sql(_, origin), Some(s)) = (&mut command, source) {
        origin.at = Some(format!("{s}, line {start}"));
    }
    Some(command)
}

impl From<split::Statement> for Command {
    fn from(s: split::Statement) -> Self {
        Command::Sql(s.sql, Origin { lead: s.lead, at: None })
    }
}

impl Source {
    fn new(args: &Args) -> std::result::Result<Source, String> {
        if !args.commands.is_empty() || !args.files.is_empty() {
            let mut queue = std::collections::VecDeque::new();
            for (i, c) in args.commands.iter().enumerate() {
                let mut s = Splitter::default();
                let source = format!("-c {}", i + 1);
                let start = commands_of(c, Some(&source), &mut queue, &mut s);
                queue.extend(last_of(&mut s, Some(&source), start));
            }
            for f in &args.files {
                let text = std::fs::read_to_string(f).map_err(|e| format!("cannot read '{}': {e}", f.display()))?;
                let mut s = Splitter::default();
                let source = f.display().to_string();
                let start = commands_of(&text, Some(&source), &mut queue, &mut s);
                queue.extend(last_of(&mut s, Some(&source), start));
            }
            queue.push_back(Command::Quit);
            return Ok(Source::Script(queue));
        }
        if std::io::stdin().is_terminal() {
            let mut editor = rustyline::DefaultEditor::new().map_err(|e| e.to_string())?;
            if let Some(h) = history_file() {
                let _ = editor.load_history(&h);
            }
            return Ok(Source::Prompt(
                Box::new(editor),
                Splitter::default(),
                std::collections::VecDeque::new(),
            ));
        }
        Ok(Source::Stdin {
            stdin: std::io::stdin().lock(),
            splitter: Splitter::default(),
            queue: std::collections::VecDeque::new(),
            prompt: terminal::input_is_terminal(),
        })
    }

    fn interactive(&self) -> bool {
        matches!(self, Source::Prompt(..) | Source::Stdin { prompt: true, .. })
    }

    /// The next command (rank 0 only).
    fn next(&mut self) -> Command {
        match self {
            Source::Script(queue) => queue.pop_front().unwrap_or(Command::Quit),
            Source::Prompt(editor, splitter, queue) => loop {
                if let Some(c) = queue.pop_front() {
                    return c;
                }
                let prompt = if splitter.pending() { "heatsql-> " } else { "heatsql> " };
                match editor.readline(prompt) {
                    Ok(line) => {
                        if !splitter.pending() && line.trim_start().starts_with('\\') {
                            let _ = editor.add_history_entry(line.trim());
                            let origin = Origin {
                                lead: splitter.take_lead(),
                                at: None,
                            };
                            return Command::Meta(line.trim().to_string(), origin);
                        }
                        let done = splitter.push_line(&line);
                        if !done.is_empty() {
                            let _ = editor.add_history_entry(line.trim());
                            if let Some(h) = history_file() {
                                let _ = editor.append_history(&h);
                            }
                            // Several statements on one line run in order, one per call.
                            queue.extend(done.into_iter().map(Command::from));
                            if let Some(c) = queue.pop_front() {
                                return c;
                            }
                        } else if !line.trim().is_empty() {
                            let _ = editor.add_history_entry(line.trim());
                        }
                    }
                    Err(rustyline::error::ReadlineError::Interrupted) => {
                        // Ctrl-C: drop the statement being typed.
                        *splitter = Splitter::default();
                    }
                    Err(_) => return Command::Quit,
                }
            },
            Source::Stdin {
                stdin,
                splitter,
                queue,
                prompt,
            } => loop {
                if let Some(c) = queue.pop_front() {
                    if *prompt && let Command::Sql(text, _) | Command::Meta(text, _) = &c {
                        append_history(text);
                    }
                    return c;
                }
                if *prompt {
                    print!("{}", if splitter.pending() { "heatsql-> " } else { "heatsql> " });
                    let _ = std::io::stdout().flush();
                }
                let mut line = String::new();
                match stdin.read_line(&mut line) {
                    Ok(0) | Err(_) => {
                        return last_of(splitter, None, 0).unwrap_or(Command::Quit);
                    }
                    Ok(_) => {
                        commands_of(line.trim_end_matches(['\n', '\r']), None, queue, splitter);
                    }
                }
            },
        }
    }
}

/// Runs the shell; returns the process exit code (the same on every rank).
pub async fn run(args: Args) -> i32 {
    let ctx = HeatContext::new();
    let comm = ctx.comm();
    let me = comm.rank();
    // Memory limit and spill directory: session settings, set on every rank before anything runs.
    let mut settings = Vec::new();
    if let Some(dir) = &args.temp_dir {
        settings.push(format!(
            "SET datafusion.runtime.temp_directory = '{}'",
            dir.display().to_string().replace('\'', "''")
        ));
    }
    if let Some(limit) = &args.memory_limit {
        settings.push(format!(
            "SET datafusion.runtime.memory_limit = '{}'",
            limit.replace('\'', "''")
        ));
    }
    for set in settings {
        if let Err(e) = async { ctx.sql(&set).await?.collect().await }.await {
            if me == 0 {
                eprintln!("heatsql: {set}: {e}");
            }
            return 2;
        }
    }
    // Rank 0 opens the input; a failure (an unreadable -f file) ends every rank.
    let source = if me == 0 { Some(Source::new(&args)) } else { None };
    let opened = match &source {
        Some(Err(e)) => Err(e.clone()),
        _ => Ok(()),
    };
    if let Err(e) = comm.agree(opened) {
        if me == 0 {
            eprintln!("heatsql: {}", agreed_text(e));
        }
        return 2;
    }
    let mut source = source.and_then(|s| s.ok());
    // Only rank 0 knows its input; every rank must agree on whether an error ends the run.
    let interactive = source.as_ref().is_some_and(Source::interactive);
    let interactive = match comm.bcast_vec(vec![u8::from(interactive)], 0) {
        Ok(v) => v.first() == Some(&1),
        Err(e) => {
            eprintln!("heatsql: rank {me}: {e}");
            return 3;
        }
    };
    // Progress of long operations, on rank 0's terminal only (never when piped or with -q).
    if me == 0 && !args.quiet && terminal::error_is_terminal() {
        heatsql::progress::set_sink(Some(std::sync::Arc::new(progress::TerminalProgress::from_env())));
    }
    let mut shell = Shell {
        ctx,
        comm,
        format: args.format,
        maxrows: args.maxrows.0,
        quiet: args.quiet,
        timing: true,
    };
    if me == 0 && interactive && !args.quiet {
        println!(
            "heatsql {} on {} rank(s). End statements with ';'. \\? for help, \\q to quit.",
            env!("CARGO_PKG_VERSION"),
            comm.size()
        );
    }
    loop {
        let command = match source.as_mut() {
            Some(s) => s.next(),
            None => Command::Quit,
        };
        if me == 0
            && args.echo
            && !interactive
            && let Some(text) = command.echo()
        {
            println!("{text}");
        }
        let at = match &command {
            Command::Sql(_, o) | Command::Meta(_, o) => o.at.clone(),
            Command::Quit => None,
        };
        let bytes = if me == 0 { command.encode() } else { Vec::new() };
        let command = match comm.bcast_bytes(bytes, 0) {
            Ok(b) => Command::decode(&b),
            Err(e) => {
                eprintln!("heatsql: rank {me}: {e}");
                return 3;
            }
        };
        let ok = match command {
            Command::Quit => return 0,
            Command::Sql(sql, _) => shell.statement(&sql).await,
            Command::Meta(m, _) => match shell.meta(&m).await {
                Flow::Quit => return 0,
                Flow::Continue(ok) => ok,
            },
        };
        // Query errors are already the same everywhere; printing can fail on rank 0 alone.
        let ok = comm
            .allreduce(&[u64::from(ok)], heatsql::ReduceOp::Min)
            .map(|v| v[0] == 1)
            .unwrap_or(false);
        if !ok && !interactive {
            if let Some(at) = at {
                eprintln!("heatsql: stopped at the statement that failed ({at})");
            }
            return 1;
        }
    }
}

enum Flow {
    Continue(bool),
    Quit,
}

struct Shell {
    ctx: HeatContext,
    comm: &'static Comm,
    format: Format,
    maxrows: Option<usize>,
    quiet: bool,
    timing: bool,
}

fn agreed_text(e: heatsql::CommError) -> String {
    match e {
        heatsql::CommError::Agreed { message, .. } => message,
        other => other.to_string(),
    }
}

const HELP: &str = "\
\\d            list tables
\\d TABLE      columns of TABLE, and its rows per rank
\\timing       toggle the elapsed time in the footer
\\?            this help
\\q            quit
SQL statements end with ';' and may span lines.";

impl Shell {
    /// Runs one statement on every rank; rank 0 prints. Returns whether it succeeded.
    async fn statement(&mut self, sql: &str) -> bool {
        let start = Instant::now();
        let result = self.query(sql).await;
        self.report(result, start)
    }

    async fn query(&self, sql: &str) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        let frame = self.ctx.sql(sql).await?;
        let schema = frame.schema();
        Ok((schema, frame.collect_on_root().await?))
    }

    fn report(&self, result: Result<(SchemaRef, Vec<RecordBatch>)>, start: Instant) -> bool {
        if self.comm.rank() != 0 {
            return result.is_ok();
        }
        match result {
            Ok((schema, batches)) => {
                let stdout = std::io::stdout();
                let mut out = stdout.lock();
                let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
                let printed = print::print(&mut out, self.format, &schema, &batches, self.maxrows);
                let cut = match printed {
                    Ok(cut) => cut,
                    Err(e) => {
                        eprintln!("heatsql: cannot print the result: {e}");
                        return false;
                    }
                };
                if !self.quiet {
                    let mut footer = format!("{rows} row{} fetched", if rows == 1 { "" } else { "s" });
                    if cut {
                        footer.push_str(&format!(
                            " (first {} shown; --maxrows changes this)",
                            self.maxrows.unwrap_or(0)
                        ));
                    }
                    footer.push('.');
                    if self.timing {
                        footer.push_str(&format!(
                            " Elapsed {:.3} s on {} rank{}.",
                            start.elapsed().as_secs_f64(),
                            self.comm.size(),
                            if self.comm.size() == 1 { "" } else { "s" }
                        ));
                    }
                    // The footer goes to stderr when the data is machine-readable.
                    if self.format == Format::Table {
                        let _ = writeln!(out, "{footer}\n");
                    } else {
                        eprintln!("{footer}");
                    }
                }
                let _ = out.flush();
                true
            }
            Err(e) => {
                eprintln!("Error: {}", e.strip_backtrace());
                false
            }
        }
    }

    async fn meta(&mut self, line: &str) -> Flow {
        let mut words = line.split_whitespace();
        let command = words.next().unwrap_or_default();
        let arg = words.next();
        let me = self.comm.rank();
        match (command, arg) {
            ("\\q", _) | ("\\quit", _) => Flow::Quit,
            ("\\?", _) | ("\\h", _) | ("\\help", _) => {
                if me == 0 {
                    println!("{HELP}");
                }
                Flow::Continue(true)
            }
            ("\\timing", _) => {
                self.timing = !self.timing;
                if me == 0 {
                    println!("Timing is {}.", if self.timing { "on" } else { "off" });
                }
                Flow::Continue(true)
            }
            ("\\d", None) => {
                let start = Instant::now();
                let r = self
                    .query(
                        "SELECT table_schema AS schema, table_name AS name, table_type AS type \
                         FROM information_schema.tables \
                         WHERE table_schema NOT IN ('information_schema') ORDER BY table_schema, table_name",
                    )
                    .await;
                Flow::Continue(self.report(r, start))
            }
            ("\\d", Some(table)) => {
                let start = Instant::now();
                let r = self.describe(table).await;
                Flow::Continue(self.report(r, start))
            }
            _ => {
                if me == 0 {
                    eprintln!("Error: unknown command '{line}' (\\? lists the commands)");
                }
                Flow::Continue(false)
            }
        }
    }

    /// Columns of `table`, then its rows per rank when it is distributed.
    async fn describe(&self, table: &str) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        let provider = self.ctx.session().table_provider(table).await?;
        let (schema, mut batches) = self
            .query(&format!(
                "SELECT column_name AS column, data_type AS type, is_nullable AS nullable \
                 FROM information_schema.columns WHERE table_name = '{}' ORDER BY ordinal_position",
                table.replace('\'', "''")
            ))
            .await?;
        let any = provider.as_ref() as &dyn std::any::Any;
        let split = match (
            any.downcast_ref::<connectors::DistributedParquetTable>(),
            any.downcast_ref::<connectors::RankSplitMemTable>(),
        ) {
            (Some(t), _) => Some((
                t.rows_per_rank(),
                format!("{} rows in {} files", t.num_rows(), t.files().len()),
            )),
            (_, Some(t)) => Some((t.rows_per_rank(), format!("{} rows in memory", t.num_rows()))),
            _ => None,
        };
        if let (Some((per_rank, what)), 0) = (split, self.comm.rank()) {
            let per_rank: Vec<String> = per_rank.iter().map(u64::to_string).collect();
            println!("{table}: {what}; rows per rank: {}", per_rank.join(", "));
        }
        batches.retain(|b| b.num_rows() > 0);
        Ok((schema, batches))
    }
}
