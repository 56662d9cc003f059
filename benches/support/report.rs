//! The one summary table: a row per figure, a column per peer, each cell a
//! value and its ratio to the best peer in the same row.

/// Which direction is good for a row.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Better {
    /// Throughput: ratio = best / value.
    Higher,
    /// Latency, CPU, bytes: ratio = value / best.
    Lower,
    /// A reference figure (a floor): no ratio.
    Neither,
}

struct Row {
    label: String,
    better: Better,
    values: Vec<Option<f64>>,
}

/// Rows in insertion order; peers in a fixed column order.
pub struct Report {
    peers: Vec<&'static str>,
    rows: Vec<Row>,
}

impl Report {
    /// An empty report with one column per name in `peers`.
    pub fn new(peers: &[&'static str]) -> Self {
        Report { peers: peers.to_vec(), rows: Vec::new() }
    }

    /// Adds an empty row at the end unless `label` already has one; rows
    /// are printed in the order they were declared.
    pub fn declare(&mut self, label: &str, better: Better) {
        if !self.rows.iter().any(|r| r.label == label) {
            self.rows.push(Row { label: label.to_string(), better, values: vec![None; self.peers.len()] });
        }
    }

    /// Records `value` for `peer` in the row `label` (declared on first
    /// use if needed).
    pub fn set(&mut self, label: &str, better: Better, peer: &str, value: f64) {
        self.declare(label, better);
        let Some(col) = self.peers.iter().position(|p| *p == peer) else {
            return;
        };
        if let Some(row) = self.rows.iter_mut().find(|r| r.label == label) {
            row.values[col] = Some(value);
        }
    }

    /// Drops rows in which no peer has a value (scenarios not run).
    pub fn prune(&mut self) {
        self.rows.retain(|r| r.values.iter().any(Option::is_some));
    }

    /// The table as GitHub markdown. Each cell is `value (×ratio)`, where
    /// ×1.00 is the best peer of that row and ×2.00 means half as good
    /// (half the throughput, or twice the latency, CPU or bytes).
    pub fn markdown(&self) -> String {
        let mut out = String::from("| figure |");
        for p in &self.peers {
            out.push_str(&format!(" {p} |"));
        }
        out.push_str("\n|---|");
        for _ in &self.peers {
            out.push_str("---:|");
        }
        out.push('\n');
        for row in &self.rows {
            out.push_str(&format!("| {} |", row.label));
            let best = best(row);
            for v in &row.values {
                let cell = match (v, best) {
                    (None, _) => "—".to_string(),
                    (Some(v), None) => num(*v),
                    (Some(v), Some(b)) => format!("{} (×{})", num(*v), ratio(row.better, *v, b)),
                };
                out.push_str(&format!(" {cell} |"));
            }
            out.push('\n');
        }
        out
    }
}

fn best(row: &Row) -> Option<f64> {
    let vals = row.values.iter().flatten().copied();
    match row.better {
        Better::Higher => vals.reduce(f64::max),
        Better::Lower => vals.reduce(f64::min),
        Better::Neither => None,
    }
}

fn ratio(better: Better, v: f64, best: f64) -> String {
    let r = match better {
        Better::Higher if v > 0.0 => best / v,
        Better::Lower if best > 0.0 => v / best,
        // A best of zero (nothing burnt) leaves no meaningful ratio.
        _ => return "n/a".to_string(),
    };
    if r >= 100.0 {
        format!("{r:.0}")
    } else if r >= 10.0 {
        format!("{r:.1}")
    } else {
        format!("{r:.2}")
    }
}

/// Three significant figures, no exponent.
pub fn num(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}
