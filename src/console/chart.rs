//! 巩固率 as a small SVG bar chart, drawn on the server (no script, no chart library).

/// One entry cohort: its 巩固率 and its retention (graduates and those still at school).
pub struct Bar {
    pub label: String,
    /// 巩固率 (0..=1), none when the cohort's base is 0.
    pub value: Option<f64>,
    /// 保留率 (graduates + in school ÷ base).
    pub second: Option<f64>,
}

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 240.0;
const LEFT: f64 = 48.0;
const BOTTOM: f64 = 40.0;
const TOP: f64 = 24.0;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The chart's SVG, with a percentage axis and a title per bar (its figure on hover).
pub fn consolidation_rates(bars: &[Bar]) -> String {
    let plot_h = HEIGHT - BOTTOM - TOP;
    let plot_w = WIDTH - LEFT - 16.0;
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="各入学年份巩固率" class="chart">"#
    );
    for pct in [0, 25, 50, 75, 100] {
        let y = TOP + plot_h * (1.0 - f64::from(pct) / 100.0);
        svg.push_str(&format!(
            r##"<line x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" font-size="11" text-anchor="end" fill="#555">{pct}%</text>"##,
            WIDTH - 16.0,
            LEFT - 6.0,
            y + 4.0
        ));
    }
    if bars.is_empty() {
        svg.push_str(&format!(
            r##"<text x="{}" y="{}" font-size="14" text-anchor="middle" fill="#777">暂无入学年份数据</text>"##,
            WIDTH / 2.0,
            HEIGHT / 2.0
        ));
    }
    let slot = plot_w / bars.len().max(1) as f64;
    let bar_w = (slot * 0.32).min(36.0);
    for (i, bar) in bars.iter().enumerate() {
        let x0 = LEFT + slot * i as f64 + slot / 2.0 - bar_w;
        for (j, (value, colour, name)) in [
            (bar.value, "#2f6fb0", "巩固率"),
            (bar.second, "#9cc3e6", "保留率"),
        ]
        .into_iter()
        .enumerate()
        {
            let x = x0 + bar_w * j as f64;
            if let Some(v) = value {
                let v = v.clamp(0.0, 1.0);
                let h = plot_h * v;
                let y = TOP + plot_h - h;
                svg.push_str(&format!(
                    r##"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{h:.1}" fill="{colour}"><title>{} {name} {:.1}%</title></rect>"##,
                    bar_w - 2.0,
                    escape(&bar.label),
                    v * 100.0
                ));
                if j == 0 {
                    svg.push_str(&format!(
                        r##"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="middle" fill="#222">{:.1}%</text>"##,
                        x + bar_w / 2.0,
                        y - 4.0,
                        v * 100.0
                    ));
                }
            }
        }
        svg.push_str(&format!(
            r##"<text x="{:.1}" y="{:.1}" font-size="12" text-anchor="middle" fill="#333">{}</text>"##,
            x0 + bar_w,
            HEIGHT - BOTTOM + 18.0,
            escape(&bar.label)
        ));
    }
    svg.push_str(&format!(
        r##"<rect x="{LEFT}" y="{}" width="10" height="10" fill="#2f6fb0"/><text x="{}" y="{}" font-size="11" fill="#333">巩固率(毕业 ÷ 基数)</text><rect x="{}" y="{}" width="10" height="10" fill="#9cc3e6"/><text x="{}" y="{}" font-size="11" fill="#333">保留率(毕业 + 在校 ÷ 基数)</text>"##,
        HEIGHT - 14.0,
        LEFT + 14.0,
        HEIGHT - 5.0,
        LEFT + 190.0,
        HEIGHT - 14.0,
        LEFT + 204.0,
        HEIGHT - 5.0
    ));
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bar_is_as_tall_as_its_rate_and_labels_are_escaped() {
        let svg = consolidation_rates(&[
            Bar {
                label: "2023 级".into(),
                value: Some(0.5),
                second: Some(1.0),
            },
            Bar {
                label: "<b>".into(),
                value: None,
                second: None,
            },
        ]);
        let plot_h = HEIGHT - BOTTOM - TOP;
        assert!(
            svg.contains(&format!("height=\"{:.1}\"", plot_h * 0.5)),
            "{svg}"
        );
        assert!(svg.contains("50.0%"));
        assert!(svg.contains("&lt;b&gt;") && !svg.contains("<b>"));
    }

    #[test]
    fn no_cohort_says_so() {
        assert!(consolidation_rates(&[]).contains("暂无入学年份数据"));
    }
}
