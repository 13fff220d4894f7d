// /playground: pick a key, read its stubs, run a script, see its output, result, calls and errors.
import { api, errorMessage, h, say } from "./common.js";

const $ = (id) => document.getElementById(id);

async function loadKeys() {
  const result = await api("GET", "/api/governance/virtual-keys");
  const keys = result.ok ? result.data.virtual_keys.filter((k) => k.is_active).map((k) => k.name).sort() : [];
  $("p-key").replaceChildren(
    ...keys.map((name) => h("option", { value: name }, name)),
    h("option", { value: "" }, "no key"));
  await loadStubs();
}

async function loadStubs() {
  const key = $("p-key").value;
  const result = await api("GET", `/api/playground/stubs?${new URLSearchParams(key ? { key } : {})}`);
  if (!result.ok) {
    $("stub-files").replaceChildren(h("p", { class: "field-error" }, errorMessage(result)));
    return;
  }
  const files = result.data.files;
  $("stub-files").replaceChildren(...(files.length
    ? files.map((file, i) => h("details", { open: i === 0 && files.length < 4 },
      h("summary", {}, file.path), h("pre", {}, file.text)))
    : [h("p", { class: "muted" }, "This key reaches no tools.")]));
}

async function run(event) {
  event?.preventDefault();
  const key = $("p-key").value;
  const body = { code: $("p-code").value };
  if (key) body.key = key;
  $("run").disabled = true;
  say("Running…");
  const result = await api("POST", "/api/playground/execute", body);
  $("run").disabled = false;
  if (!result.ok) {
    say(errorMessage(result), "bad");
    return;
  }
  say(result.data.ok ? "The script ran to the end." : "The script failed.", result.data.ok ? "ok" : "bad");
  show(result.data);
}

function show(run) {
  $("run-result").hidden = false;
  $("out-result").textContent = run.result === null ? "None" : JSON.stringify(run.result, null, 2);
  $("out-stdout").textContent = run.stdout;
  $("out-stderr").textContent = run.stderr;
  const { stats } = run;
  $("run-stats").replaceChildren(
    h("span", {}, `execution ${run.execution_id}`),
    h("span", {}, `${stats.wall_ms.toFixed(1)} ms`),
    h("span", {}, `${(stats.peak_memory_bytes / 1048576).toFixed(1)} MiB peak`),
    h("span", {}, `${run.calls.length} call${run.calls.length === 1 ? "" : "s"}`),
    ...(stats.output_truncated ? [h("span", {}, "output truncated")] : []));
  showError(run.error);
  timeline(run.calls, stats.wall_ms);
  $("run-result").scrollIntoView({ block: "start" });
}

function showError(error) {
  $("run-error").hidden = !error;
  if (!error) return;
  const where = error.line ? `Line ${error.line}: ` : "";
  const link = error.line
    ? h("button", { type: "button", class: "link", onclick: () => goToLine(error.line) }, "show the line")
    : null;
  $("error-summary").replaceChildren(h("strong", {}, `${where}${error.type}`), `: ${error.message} `, link);
  $("error-traceback").textContent = error.traceback;
}

/** Puts the caret on `line` of the script and selects it. */
function goToLine(line) {
  const code = $("p-code");
  const lines = code.value.split("\n");
  const start = lines.slice(0, line - 1).reduce((sum, text) => sum + text.length + 1, 0);
  code.focus();
  code.setSelectionRange(start, start + (lines[line - 1]?.length ?? 0));
}

function timeline(calls, wallMs) {
  $("calls-empty").hidden = calls.length > 0;
  const span = Math.max(wallMs, ...calls.map((c) => c.started_ms + c.duration_ms), 1);
  $("timeline").replaceChildren(...calls.map((call) => {
    const left = (100 * call.started_ms) / span;
    const width = (100 * call.duration_ms) / span;
    const label = `${call.client}.${call.tool}`;
    return h("li", { "data-call": label },
      h("span", { class: "name", title: label }, label),
      h("span", { class: "track", role: "img", "aria-label": `started at ${call.started_ms.toFixed(1)} ms, took ${call.duration_ms.toFixed(1)} ms` },
        h("span", { class: `bar ${call.ok ? "" : "failed"}`, style: { left: `${left}%`, width: `${width}%` } })),
      h("span", { class: "num" }, call.ok ? `${call.duration_ms.toFixed(1)} ms` : call.error_type ?? "failed"));
  }));
}

$("p-key").addEventListener("change", loadStubs);
$("run-form").addEventListener("submit", run);
$("p-code").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) run(event);
});
loadKeys();
