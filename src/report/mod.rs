//! `handler report FILE…`: the job's timeline (DESIGN.md), as exported from Application
//! Insights or saved from a log, turned into time to a runner, runner minutes and cost per day
//! and repository. Parsing stays at the edge ([`input`] for the export formats, [`lines`] for
//! our log lines); [`figures`] is pure; [`text`] and [`html`] only render.

pub mod figures;
pub mod html;
pub mod input;
pub mod lines;
pub mod text;

pub use figures::{Figures, Prices};

/// What the files held, read and counted.
#[derive(Debug)]
pub struct Report {
    pub figures: Figures,
    /// One line on where the figures came from: files, formats, lines read and used.
    pub sources: String,
}

/// Reads each `(name, text)` and counts what the timeline's lines say. A file that is not an
/// export or a log is an error that names the file.
pub fn build(files: &[(String, String)], prices: Prices) -> anyhow::Result<Report> {
    let mut events = vec![];
    let mut read = 0;
    let mut formats = std::collections::BTreeSet::new();
    for (name, text) in files {
        let (format, messages) = input::read(text).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
        formats.insert(format.as_str());
        read += messages.len();
        events.extend(messages.iter().filter_map(|m| lines::event(&m.text).map(|e| (m.at, e))));
    }
    let sources = format!(
        "{} file{} ({}), {read} lines read, {} used",
        files.len(),
        if files.len() == 1 { "" } else { "s" },
        formats.into_iter().collect::<Vec<_>>().join(", "),
        events.len()
    );
    Ok(Report {
        figures: figures::figures(&events, prices),
        sources,
    })
}
