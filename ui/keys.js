// /keys: virtual keys and their tool rules. A new key's value is made here, in the browser,
// shown once and sent once; codemode keeps its hash only.
import { api, errorMessage, FieldErrors, h, list, say } from "./common.js";

const $ = (id) => document.getElementById(id);
const form = $("key-form");
const errors = new FieldErrors(form, $("key-error"));
let editing = null;
let clients = [];

async function refresh() {
  const [keys, listed] = await Promise.all([
    api("GET", "/api/governance/virtual-keys"),
    api("GET", "/api/mcp/clients"),
  ]);
  if (!keys.ok) { say(errorMessage(keys), "bad"); return; }
  if (listed.ok) clients = listed.data.map((c) => c.name);
  const rows = keys.data.virtual_keys.sort((a, b) => a.name.localeCompare(b.name)).map(row);
  $("keys").tBodies[0].replaceChildren(...(rows.length ? rows
    : [h("tr", {}, h("td", { colspan: 5, class: "muted" }, "No virtual keys: callers need none until the first is created."))]));
}

function rules(key) {
  if (!key.mcp_configs?.length) return h("span", { class: "muted" }, "no clients");
  return h("ul", { class: "tools" }, key.mcp_configs.map((c) =>
    h("li", {}, `${c.mcp_client_name}: ${c.tools_to_execute.length ? c.tools_to_execute.join(", ") : "none"}`)));
}

function row(key) {
  return h("tr", { "data-key-name": key.name },
    h("th", { scope: "row" }, key.name),
    h("td", {}, h("span", { class: `badge ${key.is_active ? "ok" : "off"}` }, key.is_active ? "active" : "disabled")),
    h("td", {}, key.description ?? ""),
    h("td", {}, rules(key)),
    h("td", {},
      h("button", { type: "button", onclick: () => edit(key) }, "Edit"), " ",
      h("button", { type: "button", class: "danger", onclick: () => remove(key.name) }, "Delete")));
}

function ruleRows(key) {
  const configured = new Map((key?.mcp_configs ?? []).map((c) => [c.mcp_client_name, c.tools_to_execute]));
  const names = [...new Set([...clients, ...configured.keys()])].sort();
  $("k-rules").replaceChildren(...names.map((name, i) => {
    const tools = configured.get(name);
    return h("tr", { "data-client": name },
      h("td", {}, h("label", { class: "inline" },
        h("input", { type: "checkbox", id: `k-rule-${i}`, checked: tools !== undefined }), name)),
      h("td", {}, h("input", { "aria-label": `Tools of ${name}`, value: tools === undefined ? "*" : tools.join(", "), autocomplete: "off" })));
  }));
  if (!names.length) $("k-rules").replaceChildren(h("tr", {}, h("td", { colspan: 2, class: "muted" }, "No MCP clients yet.")));
}

function showForm(show) {
  form.hidden = !show;
  $("add-key").setAttribute("aria-expanded", String(show));
  if (show) $("k-name").focus();
}

function reset(key) {
  form.reset();
  errors.clear();
  editing = key?.name ?? null;
  $("key-form-title").textContent = editing ? `Edit ${editing}` : "Create a virtual key";
  $("save-key").textContent = editing ? "Save" : "Create key";
  $("k-name").value = key?.name ?? "";
  $("k-description").value = key?.description ?? "";
  $("k-active").checked = key ? key.is_active : true;
  ruleRows(key);
}

function edit(key) {
  $("new-key").hidden = true;
  reset(key);
  showForm(true);
}

/** 32 random bytes from the browser's CSPRNG, base64url, with a recognisable prefix. */
function newKeyValue() {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  const text = btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
  return `cmk_${text}`;
}

function formKey() {
  const mcp_configs = [...$("k-rules").querySelectorAll("tr[data-client]")]
    .filter((tr) => tr.querySelector("input[type=checkbox]").checked)
    .map((tr) => {
      const tools = tr.querySelector("input:not([type])").value.trim();
      return { mcp_client_name: tr.dataset.client, tools_to_execute: tools === "*" ? ["*"] : list(tools) };
    });
  const key = { name: $("k-name").value.trim(), is_active: $("k-active").checked, mcp_configs };
  const description = $("k-description").value.trim();
  if (description) key.description = description;
  return key;
}

async function save(event) {
  event.preventDefault();
  const key = formKey();
  const value = editing ? "<redacted>" : newKeyValue();
  key.value = value;
  const result = editing
    ? await api("PUT", `/api/governance/virtual-keys/${encodeURIComponent(editing)}`, key)
    : await api("POST", "/api/governance/virtual-keys", key);
  if (!result.ok) {
    errors.show(result);
    return;
  }
  const created = !editing;
  say(result.data?.message ?? "Saved.", "ok");
  showForm(false);
  reset();
  if (created) {
    $("new-key-value").textContent = value;
    $("new-key").hidden = false;
    $("new-key").focus();
  }
  refresh();
}

async function remove(name) {
  if (!confirm(`Delete the virtual key ${name}? Callers using it are refused from now on.`)) return;
  const result = await api("DELETE", `/api/governance/virtual-keys/${encodeURIComponent(name)}`);
  say(result.ok ? result.data.message : errorMessage(result), result.ok ? "ok" : "bad");
  refresh();
}

$("add-key").addEventListener("click", () => {
  $("new-key").hidden = true;
  if (form.hidden || editing) { reset(); showForm(true); } else showForm(false);
});
$("cancel-key").addEventListener("click", () => { reset(); showForm(false); $("add-key").focus(); });
form.addEventListener("keydown", (event) => { if (event.key === "Escape") { reset(); showForm(false); $("add-key").focus(); } });
form.addEventListener("submit", save);
$("copy-key").addEventListener("click", async () => {
  try { await navigator.clipboard.writeText($("new-key-value").textContent); say("Copied.", "ok"); }
  catch { say("Select the key and copy it by hand.", "bad"); }
});
$("close-new-key").addEventListener("click", () => {
  $("new-key-value").textContent = "";
  $("new-key").hidden = true;
  $("add-key").focus();
});
refresh();
