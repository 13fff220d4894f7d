//! The web UI in headless Chromium against the real service and server-everything over stdio:
//! a client added through the form (a bad field first), its state and tools, a script run in
//! the playground with its calls, the audit log updating without a reload, the login, a key's
//! value shown once, the keyboard, a narrow window. Each page's screenshot goes to
//! `CODEMODE_UI_SCREENSHOTS` (`docs/ui/` when the docs are regenerated).

use fantoccini::key::Key;
use serde_json::{Value, json};

use crate::support::browser::{Browser, serve};
use crate::support::servers::server_script;
use crate::support::stdio_client;

const ADMIN_TOKEN: &str = "an-admin-token-for-the-ui-test";

async fn post_json(url: &str, body: Value, bearer: Option<&str>) -> (u16, Value) {
    let mut request = reqwest::Client::new().post(url).json(&body);
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("answer");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_ui_adds_a_client_runs_a_script_and_shows_its_calls_live() {
    let (base, app, _dir) = serve(json!({})).await;
    let browser = Browser::start().await;

    // `/` is the clients page; with no admin token it says so, and is open on loopback.
    browser.goto(&format!("{base}/")).await;
    assert_eq!(browser.path().await, "/mcp-clients");
    assert!(browser.text(".notice").await.contains("No admin token"));

    // A bad name: the API's error appears next to the name field, and nothing is added.
    browser.click("#add-client").await;
    browser.fill("#f-name", "not a name!").await;
    browser.fill("#f-command", "node").await;
    let script = server_script("server-everything").display().to_string();
    browser.fill("#f-args", &script).await;
    browser.click("#f-code-mode").await;
    browser.click("#save-client").await;
    let error = browser
        .wait_for("//p[@id='e-name' and normalize-space() != '']")
        .await;
    assert!(!error.text().await.expect("text").is_empty());
    let name_field = browser.find("#f-name").await;
    assert_eq!(
        name_field.attr("aria-invalid").await.expect("attr"),
        Some("true".into())
    );
    browser.screenshot("mcp-clients-form-error").await;
    assert!(app.manager.status().await.is_empty());

    // Fixed, it is added, connects, and lists its tools with their marks.
    browser.fill("#f-name", "everything").await;
    browser.fill("#f-skip", "get-env").await;
    browser.fill("#f-auto", "echo, get-sum").await;
    browser.click("#save-client").await;
    browser
        .wait_for("//section[@data-client='everything']//span[@data-state='connected']")
        .await;
    browser
        .wait_for(
            "//section[@data-client='everything']//li[@data-tool='echo']/span[text()='allowed']",
        )
        .await;
    browser
        .wait_for("//section[@data-client='everything']//li[@data-tool='echo']/span[text()='auto']")
        .await;
    browser
        .wait_for(
            "//section[@data-client='everything']//li[@data-tool='get-env']/span[text()='skipped']",
        )
        .await;
    let status = app.manager.status().await;
    assert_eq!(status.len(), 1);
    assert!(status[0].config.is_code_mode_client);
    assert_eq!(status[0].config.tools_to_skip, ["get-env"]);
    assert!(status[0].tools.iter().any(|t| t == "echo"));
    assert!(!status[0].tools.iter().any(|t| t == "get-env"));
    browser.screenshot("mcp-clients").await;

    // The playground: the stubs beside the editor, a failing script's error with its line...
    browser.goto(&format!("{base}/playground")).await;
    browser
        .wait_for("//div[@id='stub-files']//summary[text()='servers/everything.pyi']")
        .await;
    browser
        .fill("#p-code", "x = 1\nraise ValueError('boom')")
        .await;
    browser.click("#run").await;
    let summary = browser
        .wait_for("//p[@id='error-summary' and contains(., 'ValueError')]")
        .await;
    let summary = summary.text().await.expect("text");
    assert!(summary.contains("Line 2"), "{summary}");
    assert!(summary.contains("boom"), "{summary}");

    // ...then a script's output, result and calls as a timeline.
    browser
        .fill(
            "#p-code",
            "from servers import everything\nprint(everything.echo(message='hi'))\nresult = everything.get_sum(a=2, b=3)",
        )
        .await;
    browser.click("#run").await;
    browser
        .wait_for("//ol[@id='timeline']/li[@data-call='everything.get-sum']")
        .await;
    browser
        .wait_for("//ol[@id='timeline']/li[@data-call='everything.echo']")
        .await;
    assert!(
        browser
            .find("#run-error")
            .await
            .is_displayed()
            .await
            .is_ok_and(|shown| !shown)
    );
    assert!(browser.text("#out-stdout").await.contains("Echo: hi"));
    assert!(browser.text("#out-result").await.contains('5'));
    browser.screenshot("playground").await;

    // The log shows those calls, and one made elsewhere appears without a reload.
    browser.goto(&format!("{base}/logs")).await;
    browser.wait_for("//tr[td/code[text()='echo']]").await;
    browser
        .eval("window.stillThisPage = true; return null")
        .await;
    let code = "from servers import everything\nresult = everything.get_annotated_message(messageType='success')";
    let (status, run) = post_json(
        &format!("{base}/v1/code/execute"),
        json!({"code": code}),
        None,
    )
    .await;
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["ok"], true, "{run}");
    browser
        .wait_for("//tr[td/code[text()='get-annotated-message']]")
        .await;
    assert_eq!(
        browser.eval("return window.stillThisPage === true").await,
        true
    );
    browser.screenshot("logs").await;

    // The filter narrows to one tool.
    browser.fill("#q-tool", "echo").await;
    browser.press_enter("#q-tool").await;
    browser
        .wait_for("//p[@id='summary' and starts-with(., '1 call ')]")
        .await;

    // A narrow window: nothing wider than the window.
    browser
        .client
        .set_window_size(420, 900)
        .await
        .expect("resize");
    browser.goto(&format!("{base}/mcp-clients")).await;
    browser
        .wait_for("//section[@data-client='everything']//span[@data-state='connected']")
        .await;
    let fits = browser
        .eval("return document.documentElement.scrollWidth <= window.innerWidth")
        .await;
    assert_eq!(fits, true);
    browser.screenshot("mcp-clients-narrow").await;

    // Edit: the form opens with the client's settings; clearing the skipped tool allows it.
    browser
        .client
        .set_window_size(1280, 800)
        .await
        .expect("resize");
    browser.click("[data-key='everything:edit']").await;
    assert_eq!(browser.text("#client-form-title").await, "Edit everything");
    assert_eq!(
        browser
            .find("#f-skip")
            .await
            .prop("value")
            .await
            .expect("value"),
        Some("get-env".into())
    );
    browser.fill("#f-skip", "").await;
    browser.click("#save-client").await;
    browser
        .wait_for(
            "//section[@data-client='everything']//li[@data-tool='get-env']/span[text()='allowed']",
        )
        .await;
    assert!(
        app.manager.status().await[0]
            .config
            .tools_to_skip
            .is_empty()
    );

    // Delete, once confirmed: the server goes, and so does its card.
    browser.click("[data-key='everything:delete']").await;
    browser
        .client
        .accept_alert()
        .await
        .expect("the confirmation");
    browser
        .wait_for("//p[contains(., 'No MCP clients yet')]")
        .await;
    assert!(app.manager.status().await.is_empty());
    browser.close().await;
}

#[tokio::test]
async fn the_ui_login_refuses_a_wrong_token_and_a_new_key_is_shown_once() {
    let everything = stdio_client("everything", "server-everything", &["stdio"], &[]);
    let config = json!({
        "governance": {"admin_token": ADMIN_TOKEN},
        "mcp": {"client_configs": [everything]},
    });
    let (base, _app, _dir) = serve(config).await;
    let browser = Browser::start().await;

    // Every page asks for the login first.
    browser.goto(&format!("{base}/keys")).await;
    assert_eq!(browser.path().await, "/login");
    browser.screenshot("login").await;

    // A wrong token is refused on the login page.
    browser.fill("#token", "not-the-token").await;
    browser.press_enter("#token").await;
    let refused = browser.wait_for("//p[@id='login-error']").await;
    assert!(
        refused
            .text()
            .await
            .expect("text")
            .contains("not the admin token")
    );
    assert_eq!(browser.path().await, "/login");

    // The right one opens the page asked for, with an HttpOnly, SameSite=Strict session.
    browser.fill("#token", ADMIN_TOKEN).await;
    browser.press_enter("#token").await;
    browser.wait_for("//h1[text()='Virtual keys']").await;
    assert_eq!(browser.path().await, "/keys");
    let cookie = browser
        .client
        .get_named_cookie("codemode_session")
        .await
        .expect("a session cookie");
    assert_eq!(cookie.http_only(), Some(true));
    assert_eq!(cookie.same_site(), Some(cookie::SameSite::Strict));
    let scripts_see = browser.eval("return document.cookie").await;
    assert!(
        !scripts_see
            .as_str()
            .unwrap_or_default()
            .contains("codemode_session")
    );

    // A key made with the keyboard only: Enter on the button; the name; Tab past the
    // description and the active box to the client's rule, Space to allow it, Tab to its tools
    // and Enter to submit.
    browser
        .eval("document.getElementById('add-key').focus(); return null")
        .await;
    let active = browser.client.active_element().await.expect("focus");
    active
        .send_keys(&Key::Enter.to_string())
        .await
        .expect("enter");
    browser
        .wait_for("//form[@id='key-form' and not(@hidden)]")
        .await;
    let focused = browser.client.active_element().await.expect("focus");
    assert_eq!(focused.attr("id").await.expect("id"), Some("k-name".into()));
    let tab = Key::Tab.to_string();
    let keys = format!("pipeline{tab}{tab}{tab} {tab}{}", Key::Enter);
    focused.send_keys(&keys).await.expect("types");
    let shown = browser
        .wait_for("//p[@id='new-key-value' and normalize-space() != '']")
        .await;
    let value = shown.text().await.expect("text");
    assert!(value.starts_with("cmk_"), "{value}");
    browser.wait_for("//tr[@data-key-name='pipeline']").await;
    browser.screenshot("keys").await;

    // The value works as a key (and reaches the client it was given), and is never shown again.
    let tools = reqwest::Client::new()
        .get(format!("{base}/v1/mcp/tools"))
        .bearer_auth(&value)
        .send()
        .await
        .expect("answer");
    assert_eq!(tools.status(), 200);
    let tools = tools.text().await.expect("body");
    assert!(tools.contains("everything"), "{tools}");
    browser.goto(&format!("{base}/keys")).await;
    browser.wait_for("//tr[@data-key-name='pipeline']").await;
    let page = browser.client.source().await.expect("source");
    assert!(!page.contains(&value));

    // Logging out ends the session.
    browser.click(".account button").await;
    browser.wait_for("//input[@id='token']").await;
    browser.goto(&format!("{base}/mcp-clients")).await;
    assert_eq!(browser.path().await, "/login");
    let (status, _) = post_json(
        &format!("{base}/api/governance/virtual-keys"),
        json!({}),
        None,
    )
    .await;
    assert_eq!(status, 401);
    browser.close().await;
}
