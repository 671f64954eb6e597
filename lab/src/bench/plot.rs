//! The plot: received Mpps by frame size, one bar per target, for each direction (1 flow);
//! under a search, a black tick marks what the target received at overload.
//! Plain SVG, written by hand: no plotting dependency for one chart.

use std::{fmt::Write as _, path::Path};

use super::{Direction, Report, Target};

const COLORS: [(Target, &str); 5] = [
    (Target::Baseline, "#9e9e9e"),
    (Target::Hybrid, "#2e7d32"),
    (Target::Xdp, "#1565c0"),
    (Target::Afxdp, "#64b5f6"),
    (Target::Peer, "#ef6c00"),
];

pub fn write(path: &Path, report: &Report) -> std::io::Result<()> {
    let flows = report.rows.iter().map(|r| r.flows).min().unwrap_or(1);
    let mut sizes: Vec<usize> = report.rows.iter().map(|r| r.size).collect();
    sizes.sort();
    sizes.dedup();
    let targets: Vec<Target> = COLORS
        .iter()
        .map(|(t, _)| *t)
        .filter(|t| report.rows.iter().any(|r| r.target == *t))
        .collect();
    let max = report
        .rows
        .iter()
        .map(|r| r.received_mpps.max(r.overload_mpps.unwrap_or(0.0)))
        .fold(0.0f64, f64::max)
        .max(0.001)
        * 1.1;
    let (panel_w, panel_h, top, left) = (420.0, 260.0, 50.0, 60.0);
    let width = left + Direction::ALL.len() as f64 * (panel_w + 30.0);
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{}" font-family="sans-serif" font-size="12">"#,
        top + panel_h + 80.0
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{left}" y="20" font-size="14">ovnest bench: received Mpps by frame size ({flows} flow, {} rounds x {} ms; {} {})</text>"#,
        report.rounds, report.window_ms, report.machine.kernel, report.machine.cpu
    );
    for (p, direction) in Direction::ALL.iter().enumerate() {
        let x0 = left + p as f64 * (panel_w + 30.0);
        let _ = writeln!(
            svg,
            r#"<text x="{x0}" y="{}">{}</text>"#,
            top - 8.0,
            direction.label().replace('>', "&gt;")
        );
        let _ = writeln!(
            svg,
            r#"<line x1="{x0}" y1="{}" x2="{}" y2="{}" stroke="black"/>"#,
            top + panel_h,
            x0 + panel_w,
            top + panel_h
        );
        let _ = writeln!(
            svg,
            r#"<line x1="{x0}" y1="{top}" x2="{x0}" y2="{}" stroke="black"/>"#,
            top + panel_h
        );
        for tick in 0..=4 {
            let value = max * tick as f64 / 4.0;
            let y = top + panel_h - panel_h * tick as f64 / 4.0;
            let _ = writeln!(
                svg,
                r#"<text x="{}" y="{}" text-anchor="end">{value:.2}</text>"#,
                x0 - 4.0,
                y + 4.0
            );
        }
        let group_w = panel_w / sizes.len().max(1) as f64;
        let bar_w = (group_w - 10.0) / targets.len().max(1) as f64;
        for (g, size) in sizes.iter().enumerate() {
            let gx = x0 + g as f64 * group_w + 5.0;
            let _ = writeln!(
                svg,
                r#"<text x="{}" y="{}" text-anchor="middle">{size} B</text>"#,
                gx + group_w / 2.0 - 5.0,
                top + panel_h + 16.0
            );
            for (t, target) in targets.iter().enumerate() {
                let Some(row) = report.rows.iter().find(|r| {
                    r.direction == *direction
                        && r.size == *size
                        && r.flows == flows
                        && r.target == *target
                }) else {
                    continue;
                };
                let h = panel_h * row.received_mpps / max;
                let color = COLORS
                    .iter()
                    .find(|(c, _)| c == target)
                    .map_or("black", |(_, c)| c);
                let _ = writeln!(
                    svg,
                    r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="{color}"><title>{} {size} B: {:.3} Mpps</title></rect>"#,
                    gx + t as f64 * bar_w,
                    top + panel_h - h,
                    bar_w - 2.0,
                    target.label(),
                    row.received_mpps
                );
                if let Some(overload) = row.overload_mpps {
                    let y = top + panel_h - panel_h * overload / max;
                    let _ = writeln!(
                        svg,
                        r#"<line x1="{:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="black" stroke-width="2"><title>{} {size} B at overload: {overload:.3} Mpps</title></line>"#,
                        gx + t as f64 * bar_w,
                        gx + (t + 1) as f64 * bar_w - 2.0,
                        target.label(),
                    );
                }
            }
        }
    }
    for (i, target) in targets.iter().enumerate() {
        let x = left + i as f64 * 170.0;
        let y = top + panel_h + 40.0;
        let color = COLORS
            .iter()
            .find(|(c, _)| c == target)
            .map_or("black", |(_, c)| c);
        let _ = writeln!(
            svg,
            r#"<rect x="{x}" y="{}" width="12" height="12" fill="{color}"/><text x="{}" y="{}">{}</text>"#,
            y - 10.0,
            x + 16.0,
            y,
            target.label()
        );
    }
    let _ = writeln!(
        svg,
        r#"<text x="{left}" y="{}">Mpps received at the destination VM (y), per frame size (x); bars: throughput (highest rate losing at most the tolerance), ticks: at overload</text>"#,
        top + panel_h + 64.0
    );
    svg.push_str("</svg>\n");
    std::fs::write(path, svg)
}
