//! HTML building blocks: escaping, the page frame, number formats, record
//! bytes as text/JSON/hex, and SVG line charts rendered on the server (the
//! page script only refreshes them).
//!
//! Every value that reaches a page goes through [`esc`] (or [`pct`] inside a
//! URL): topic names, group ids, record keys, values and headers are
//! attacker-controlled.

use std::fmt::Write;

/// Escapes text for an HTML element body or a quoted attribute value.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// Percent-encodes a URL path segment or query value (RFC 3986 unreserved
/// characters stay as they are).
pub fn pct(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            o.push(b as char);
        } else {
            let _ = write!(o, "%{b:02X}");
        }
    }
    o
}

/// The pages of the navigation bar: (path, label).
pub const NAV: &[(&str, &str)] = &[
    ("/ui", "Overview"),
    ("/ui/topics", "Topics"),
    ("/ui/groups", "Consumer groups"),
    ("/ui/brokers", "Brokers"),
    ("/ui/cost", "Cost"),
];

/// A whole page: `body` is already-escaped HTML. `active` is the NAV path
/// to mark current. `live` asks the script to refresh `[data-live]`
/// elements.
pub fn page(title: &str, active: &str, live: bool, body: &str) -> String {
    let mut o = String::with_capacity(body.len() + 2048);
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{} · Strata console</title>\n\
         <link rel=\"stylesheet\" href=\"/ui/assets/console.css\">\n\
         <script src=\"/ui/assets/console.js\" defer></script>\n\
         </head>\n<body{}>\n\
         <a class=\"skip\" href=\"#main\">Skip to content</a>\n\
         <header class=\"top\"><a class=\"brand\" href=\"/ui\">Strata</a>\n\
         <nav aria-label=\"Console\"><ul>",
        esc(title),
        if live {
            " data-live-refresh=\"5000\""
        } else {
            ""
        },
    );
    for (href, label) in NAV {
        let cur = if *href == active {
            " aria-current=\"page\""
        } else {
            ""
        };
        let _ = write!(o, "<li><a href=\"{href}\"{cur}>{label}</a></li>");
    }
    let _ = write!(
        o,
        "</ul></nav></header>\n<main id=\"main\" tabindex=\"-1\">\n<h1>{}</h1>\n{body}\n</main>\n\
         <footer><p><a href=\"/metrics\">/metrics</a> · <a href=\"/docs\">REST API</a>{}</p></footer>\n\
         </body>\n</html>\n",
        esc(title),
        if live {
            " · <span id=\"live-status\" role=\"status\" aria-live=\"polite\">live refresh every 5 s with JavaScript</span>"
        } else {
            ""
        }
    );
    o
}

/// Bytes in binary units (`1.5 MiB`).
pub fn bytes(n: f64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    if !n.is_finite() {
        return "-".into();
    }
    let mut v = n;
    let mut u = 0;
    while v.abs() >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{} B", v as i64)
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// A number with up to `digits` decimals and no trailing zeros.
pub fn num(v: f64, digits: usize) -> String {
    if !v.is_finite() {
        return "-".into();
    }
    let s = format!("{v:.digits$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// A duration in milliseconds as Kafka configs state them (`7 d`, `-1` =
/// forever).
pub fn duration_ms(ms: i64) -> String {
    if ms < 0 {
        return "forever".into();
    }
    let units = [
        (86_400_000, "d"),
        (3_600_000, "h"),
        (60_000, "min"),
        (1000, "s"),
    ];
    for (n, u) in units {
        if ms >= n && ms % n == 0 {
            return format!("{} {u}", ms / n);
        }
    }
    format!("{ms} ms")
}

/// How record bytes are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shown {
    Text,
    Json,
    Hex,
}

impl Shown {
    pub fn parse(s: Option<&str>) -> Option<Shown> {
        match s.unwrap_or("text") {
            "text" | "" => Some(Shown::Text),
            "json" => Some(Shown::Json),
            "hex" => Some(Shown::Hex),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Shown::Text => "text",
            Shown::Json => "json",
            Shown::Hex => "hex",
        }
    }
}

/// Bytes as text: valid UTF-8 as is, other bytes and control characters
/// (except newline and tab) as `\xNN`, a backslash as `\\`, so the bytes can
/// be read back exactly. Not yet HTML-escaped.
pub fn text_of(b: &[u8]) -> String {
    let mut o = String::with_capacity(b.len());
    let mut rest = b;
    while !rest.is_empty() {
        let (good, bad) = match std::str::from_utf8(rest) {
            Ok(s) => (s, &[][..]),
            Err(e) => {
                let (g, b) = rest.split_at(e.valid_up_to());
                // SAFETY-free: valid_up_to guarantees g is valid UTF-8.
                (std::str::from_utf8(g).unwrap_or(""), b)
            }
        };
        for c in good.chars() {
            match c {
                '\\' => o.push_str("\\\\"),
                '\n' | '\t' => o.push(c),
                c if c.is_control() => {
                    let mut buf = [0u8; 4];
                    for byte in c.encode_utf8(&mut buf).bytes() {
                        let _ = write!(o, "\\x{byte:02x}");
                    }
                }
                c => o.push(c),
            }
        }
        match bad.split_first() {
            Some((first, tail)) => {
                let _ = write!(o, "\\x{first:02x}");
                rest = tail;
            }
            None => rest = &[],
        }
    }
    o
}

/// Bytes as lowercase hex pairs separated by spaces.
pub fn hex_of(b: &[u8]) -> String {
    let mut o = String::with_capacity(b.len() * 3);
    for (i, x) in b.iter().enumerate() {
        if i > 0 {
            o.push(' ');
        }
        let _ = write!(o, "{x:02x}");
    }
    o
}

/// Record bytes shown as asked, HTML-escaped, at most `cap` bytes of them;
/// `None` (a null key or value) is shown as such.
pub fn record_bytes(b: Option<&[u8]>, how: Shown, cap: usize) -> String {
    let Some(b) = b else {
        return "<span class=\"null\">null</span>".into();
    };
    let shown = &b[..b.len().min(cap)];
    let body = match how {
        Shown::Text => esc(&text_of(shown)),
        Shown::Hex => esc(&hex_of(shown)),
        Shown::Json => match serde_json::from_slice::<serde_json::Value>(shown) {
            Ok(v) => esc(&serde_json::to_string_pretty(&v).unwrap_or_default()),
            Err(_) => format!(
                "{} <span class=\"note\">(not JSON, shown as text)</span>",
                esc(&text_of(shown))
            ),
        },
    };
    if b.len() > cap {
        format!(
            "{body}<span class=\"note\"> … ({} bytes, first {cap} shown)</span>",
            b.len()
        )
    } else {
        body
    }
}

/// A small line chart as inline SVG (no script, no inline style): `points`
/// are (time ms, value); `fmt` formats a value for the axis and caption.
pub fn chart(id: &str, title: &str, points: &[(i64, f64)], fmt: &dyn Fn(f64) -> String) -> String {
    const W: f64 = 300.0;
    const H: f64 = 80.0;
    let mut o = String::new();
    let last = points.last().map(|p| p.1);
    let max = points.iter().map(|p| p.1).fold(0.0f64, f64::max);
    let caption = match last {
        Some(v) => format!(
            "{}: now {}, max {} over the last {}",
            title,
            fmt(v),
            fmt(max),
            window(points)
        ),
        None => format!("{title}: no samples yet"),
    };
    let _ = write!(
        o,
        "<figure class=\"chart\" id=\"{}\" data-live>\n<figcaption><span class=\"chart-title\">{}</span> <span class=\"chart-now\">{}</span></figcaption>\n\
         <svg viewBox=\"0 0 {W} {H}\" preserveAspectRatio=\"none\" role=\"img\" aria-label=\"{}\" focusable=\"false\">",
        esc(id),
        esc(title),
        esc(&last.map(fmt).unwrap_or_else(|| "–".into())),
        esc(&caption),
    );
    let _ = write!(
        o,
        "<line class=\"axis\" x1=\"0\" y1=\"{H}\" x2=\"{W}\" y2=\"{H}\"/>"
    );
    if points.len() >= 2 {
        let t0 = points[0].0 as f64;
        let t1 = points[points.len() - 1].0 as f64;
        let span = (t1 - t0).max(1.0);
        let top = if max > 0.0 { max * 1.1 } else { 1.0 };
        let mut path = String::new();
        let mut area = format!("0,{H} ");
        for (t, v) in points {
            let x = (*t as f64 - t0) / span * W;
            let y = H - (v.max(0.0) / top) * (H - 2.0);
            let _ = write!(path, "{x:.1},{y:.1} ");
            let _ = write!(area, "{x:.1},{y:.1} ");
        }
        let _ = write!(area, "{W},{H}");
        let _ = write!(
            o,
            "<polygon class=\"area\" points=\"{}\"/><polyline class=\"line\" points=\"{}\"/>",
            area.trim(),
            path.trim()
        );
    }
    let _ = write!(
        o,
        "</svg>\n<p class=\"chart-axis\"><span>max {}</span><span>{}</span></p>\n</figure>\n",
        esc(&fmt(max)),
        esc(&window(points))
    );
    o
}

fn window(points: &[(i64, f64)]) -> String {
    match (points.first(), points.last()) {
        (Some(a), Some(b)) if b.0 > a.0 => {
            let s = (b.0 - a.0) / 1000;
            if s >= 120 {
                format!("{} min", s / 60)
            } else {
                format!("{s} s")
            }
        }
        _ => "–".into(),
    }
}

/// A rate in bytes per second as MB/s (decimal, as dashboards show it).
pub fn mbps(v: f64) -> String {
    format!("{} MB/s", num(v / 1e6, 3))
}

/// A per-second rate.
pub fn per_sec(v: f64) -> String {
    format!("{}/s", num(v, 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            esc("<script>alert('x')</script>&\"y\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;y&quot;"
        );
        assert_eq!(esc("plain-topic.1_x"), "plain-topic.1_x");
        assert_eq!(esc("é∑"), "é∑");
    }

    #[test]
    fn percent_encodes() {
        assert_eq!(pct("a-b.c_d~e"), "a-b.c_d~e");
        assert_eq!(pct("g/1 x&y=\"<"), "g%2F1%20x%26y%3D%22%3C");
        assert_eq!(pct("é"), "%C3%A9");
    }

    #[test]
    fn text_keeps_bytes_readable_back() {
        assert_eq!(text_of(b"hello"), "hello");
        assert_eq!(text_of(b"a\x00b\xffc"), "a\\x00b\\xffc");
        assert_eq!(text_of(b"back\\slash"), "back\\\\slash");
        assert_eq!(text_of("é\n\t".as_bytes()), "é\n\t");
        assert_eq!(text_of(b"\xe2\x82"), "\\xe2\\x82");
        assert_eq!(hex_of(&[0, 1, 0xab]), "00 01 ab");
        assert_eq!(hex_of(&[]), "");
    }

    #[test]
    fn record_bytes_are_escaped_and_capped() {
        let v = record_bytes(Some(b"<b>x</b>"), Shown::Text, 100);
        assert_eq!(v, "&lt;b&gt;x&lt;/b&gt;");
        let j = record_bytes(Some(br#"{"a":"<i>"}"#), Shown::Json, 100);
        assert!(j.contains("&quot;a&quot;: &quot;&lt;i&gt;&quot;"), "{j}");
        let nj = record_bytes(Some(b"<nope"), Shown::Json, 100);
        assert!(nj.starts_with("&lt;nope"), "{nj}");
        let capped = record_bytes(Some(&[b'a'; 50]), Shown::Hex, 4);
        assert!(capped.starts_with("61 61 61 61<span"), "{capped}");
        assert!(capped.contains("50 bytes, first 4 shown"));
        assert!(record_bytes(None, Shown::Text, 4).contains("null"));
    }

    #[test]
    fn chart_escapes_and_draws() {
        let c = chart("c<1>", "in <b>", &[(0, 1.0), (2000, 3.0)], &|v| num(v, 1));
        assert!(c.contains("id=\"c&lt;1&gt;\""));
        assert!(c.contains("in &lt;b&gt;"));
        assert!(c.contains("<polyline"));
        assert!(!c.contains("style="));
        let empty = chart("e", "t", &[], &|v| num(v, 1));
        assert!(empty.contains("no samples yet"));
    }

    #[test]
    fn formats() {
        assert_eq!(bytes(0.0), "0 B");
        assert_eq!(bytes(1536.0), "1.5 KiB");
        assert_eq!(num(1.50, 2), "1.5");
        assert_eq!(num(2.0, 2), "2");
        assert_eq!(duration_ms(604_800_000), "7 d");
        assert_eq!(duration_ms(-1), "forever");
        assert_eq!(duration_ms(1500), "1500 ms");
        assert_eq!(Shown::parse(Some("hex")), Some(Shown::Hex));
        assert_eq!(Shown::parse(Some("x")), None);
    }

    #[test]
    fn page_frame_has_no_inline_script_or_style() {
        let p = page("T<x>", "/ui/topics", true, "<p>b</p>");
        assert!(p.contains("<title>T&lt;x&gt; · Strata console</title>"));
        assert!(p.contains("href=\"/ui/topics\" aria-current=\"page\""));
        assert!(p.contains("class=\"skip\" href=\"#main\""));
        assert!(!p.contains("<script>"));
        assert!(!p.contains("<style"));
        assert!(!p.contains("style="));
    }
}
