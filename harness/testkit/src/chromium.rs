//! Headless Chromium for tests of rendered HTML (the report, the recommend page, the leaderboard site): the DOM it
//! built, its console messages and a screenshot, with no network.

/// What headless Chromium made of a page: the rendered DOM, its console messages and a screenshot.
pub struct Rendered {
    /// `--dump-dom` output.
    pub dom: String,
    /// Log lines of console messages (none expected).
    pub console: Vec<String>,
    /// The PNG screenshot (`EDGEBENCH_KEEP_SCREENSHOT=FILE` keeps a copy to look at).
    pub png: Vec<u8>,
}

/// Opens `html` in headless Chromium (`/usr/bin/chromium`, or `EDGEBENCH_CHROMIUM`) with no network, once for the
/// DOM and console, once for a screenshot of `window` (`WIDTH,HEIGHT`).
pub fn render_in_chromium(html: &str, window: &str) -> Rendered {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("page.html");
    std::fs::write(&page, html).unwrap();
    let chromium = std::env::var("EDGEBENCH_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let run = |extra: &[&str]| {
        let profile = dir.path().join(format!("profile-{}", extra.len()));
        let mut args: Vec<String> = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
        ]
        .into_iter()
        .map(String::from)
        .collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        args.extend(extra.iter().map(|s| s.to_string()));
        args.push(format!("file://{}", page.display()));
        let out =
            std::process::Command::new(&chromium).args(&args).output().unwrap_or_else(|e| panic!("{chromium}: {e}"));
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (dom, log) = run(&["--dump-dom"]);
    let console = log.lines().filter(|l| l.contains("CONSOLE")).map(str::to_string).collect();
    let shot = dir.path().join("shot.png");
    run(&[&format!("--window-size={window}"), &format!("--screenshot={}", shot.display())]);
    let png = std::fs::read(&shot).unwrap();
    if let Ok(keep) = std::env::var("EDGEBENCH_KEEP_SCREENSHOT") {
        std::fs::copy(&shot, keep).unwrap();
    }
    Rendered { dom, console, png }
}
