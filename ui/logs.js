// /logs: the audit log of tool calls, filtered, newest first, updating live.
import { api, errorMessage, formatTime, h, poll, say } from "./common.js";

const $ = (id) => document.getElementById(id);
const PAGE = 100;
let shownPages = 1;
const seen = new Set(); // execution ids already on the page, to mark new ones
let first = true;

function query(limit) {
  const params = new URLSearchParams();
  for (const name of ["vk", "client", "tool", "outcome"]) {
    const value = $(`q-${name}`).value.trim();
    if (value) params.set(name, value);
  }
  for (const name of ["since", "until"]) {
    const value = $(`q-${name}`).value;
    if (value) params.set(name, String(new Date(value).getTime()));
  }
  params.set("limit", String(limit));
  return params;
}

async function refresh() {
  const result = await api("GET", `/api/logs?${query(PAGE * shownPages)}`);
  if (!result.ok) {
    say(errorMessage(result), "bad");
    return;
  }
  say("");
  const { logs, total } = result.data;
  $("summary").textContent = `${total} call${total === 1 ? "" : "s"} match; showing ${logs.length}.`;
  $("logs").tBodies[0].replaceChildren(...logs.map(row));
  $("older").hidden = logs.length >= total;
  first = false;
}

function row(log) {
  const fresh = !first && !seen.has(log.execution_id);
  seen.add(log.execution_id);
  const execution = log.parent_execution_id
    ? h("span", { title: `call ${log.execution_id}` }, "script ", h("code", {}, log.parent_execution_id.slice(0, 8)))
    : h("code", { title: log.execution_id }, log.execution_id.slice(0, 8));
  return h("tr", { class: fresh ? "fresh" : "", "data-execution": log.execution_id },
    h("td", {}, formatTime(log.at_ms)),
    h("td", {}, log.vk ?? h("span", { class: "muted" }, "none")),
    h("td", {}, log.client),
    h("td", {}, h("code", {}, log.tool)),
    h("td", {}, h("span", { class: `badge ${log.outcome}` }, log.outcome), log.repeats > 1 ? ` ×${log.repeats}` : ""),
    h("td", {}, log.error_type ?? ""),
    h("td", { class: "num" }, `${log.latency_ms.toFixed(1)} ms`),
    h("td", {}, execution));
}

$("filters").addEventListener("submit", (event) => {
  event.preventDefault();
  shownPages = 1;
  refresh();
});
$("filters").addEventListener("reset", () => setTimeout(() => { shownPages = 1; refresh(); }));
$("older").addEventListener("click", () => { shownPages += 1; refresh(); });
poll(() => ($("q-live").checked ? refresh() : undefined), 1500);
