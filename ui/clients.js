// /mcp-clients: every client with its live state and tools; add, edit, delete, reconnect,
// authorize.
import { api, errorMessage, FieldErrors, h, lines, list, poll, say } from "./common.js";

const form = document.getElementById("client-form");
const errors = new FieldErrors(form, document.getElementById("form-error"));
const $ = (id) => document.getElementById(id);
let editing = null; // the name of the client being edited, or null when adding
let busy = new Set(); // clients with an action in flight
let shown = ""; // what the list shows now, so an unchanged poll leaves focus where it is

const STATE_TEXT = {
  connected: "connected",
  connecting: "connecting",
  disconnected: "disconnected",
  error: "error",
  pending_authorization: "needs authorization",
  needs_reauth: "needs authorization again",
};

// ---- the list -------------------------------------------------------------------------------

async function refresh() {
  const result = await api("GET", "/api/mcp/clients");
  if (!result.ok) {
    say(errorMessage(result), "bad");
    return;
  }
  const now = JSON.stringify([result.data, [...busy]]);
  if (now === shown) return;
  shown = now;
  render(result.data);
}

function render(clients) {
  const box = $("clients");
  const focused = document.activeElement?.dataset?.key;
  const closed = new Set([...box.querySelectorAll("details:not([open])")].map((d) => d.dataset.client));
  if (clients.length === 0) {
    box.replaceChildren(h("p", { class: "card muted" }, "No MCP clients yet: add one."));
    return;
  }
  box.replaceChildren(...clients.map((client) => card(client, !closed.has(client.name))));
  if (focused) box.querySelector(`[data-key="${CSS.escape(focused)}"]`)?.focus();
}

function toolMode(config) {
  return config.is_code_mode_client ? "code" : "direct";
}

function card(client, open) {
  const { config } = client;
  const where = config.connection_type === "stdio"
    ? [config.stdio_config?.command, ...(config.stdio_config?.args ?? [])].join(" ")
    : config.connection_string ?? "";
  const state = client.state;
  const actions = h("div", { class: "actions" });
  // Only a web address becomes a link (the page's CSP would stop a javascript: one anyway).
  if (/^https?:\/\//.test(client.authorize_url ?? "")) {
    actions.append(h("a", { class: "button primary", href: client.authorize_url, target: "_blank", rel: "noopener" }, "Authorize"));
  }
  actions.append(
    h("button", { type: "button", "data-key": `${client.name}:edit`, onclick: () => edit(client), disabled: busy.has(client.name) }, "Edit"),
    h("button", { type: "button", "data-key": `${client.name}:reconnect`, onclick: () => reconnect(client.name), disabled: busy.has(client.name) }, "Reconnect"),
    h("button", { type: "button", class: "danger", "data-key": `${client.name}:delete`, onclick: () => remove(client.name), disabled: busy.has(client.name) }, "Delete"),
  );
  const section = h("section", { class: "card client", "data-client": client.name, "aria-label": `Client ${client.name}` },
    h("div", { class: "client-head" },
      h("h2", {}, client.name),
      h("span", { class: `badge ${state}`, "data-state": state }, STATE_TEXT[state] ?? state),
      h("span", { class: "badge off", title: "tool mode" }, `mode: ${toolMode(config)}`),
      h("span", { class: "badge off" }, config.connection_type),
      actions),
    h("p", { class: "muted small where" }, h("code", {}, where),
      client.pid ? `  · pid ${client.pid}` : "",
      client.caller_sessions !== undefined ? `  · ${client.caller_sessions} user sessions` : ""),
    client.last_error ? h("p", { class: "client-error", role: "note" }, client.last_error) : null,
    toolList(client, open));
  return section;
}

function marksOf(client, tool) {
  const { config } = client;
  const allowed = client.tools.includes(tool);
  const skipped = !allowed;
  const auto = allowed && (config.tools_to_auto_execute ?? []).some((n) => n === "*" || n === tool);
  return { allowed, auto, skipped };
}

function toolList(client, open) {
  const offered = client.offered_tools ?? [];
  if (offered.length === 0) return null;
  const items = offered.map((tool) => {
    const marks = marksOf(client, tool);
    return h("li", { class: marks.skipped ? "skipped" : "", "data-tool": tool },
      tool,
      marks.allowed ? h("span", { class: "mark allowed" }, "allowed") : null,
      marks.auto ? h("span", { class: "mark auto" }, "auto") : null,
      marks.skipped ? h("span", { class: "mark skipped" }, "skipped") : null);
  });
  const details = h("details", { "data-client": client.name, open },
    h("summary", { "data-key": `${client.name}:tools` }, `${client.tools.length} of ${offered.length} tools allowed`),
    h("ul", { class: "tools" }, items));
  return details;
}

// ---- actions --------------------------------------------------------------------------------

async function act(name, verb, call) {
  busy.add(name);
  say(`${verb} ${name}…`);
  await refresh();
  const result = await call();
  busy.delete(name);
  if (result.ok && result.data?.status === "pending_oauth") {
    say(`${name} waits for authorization: use its Authorize button.`);
  } else if (result.ok) {
    say(result.data?.message ?? "Done.", "ok");
  } else {
    say(errorMessage(result), "bad");
  }
  await refresh();
  return result;
}

function reconnect(name) {
  return act(name, "Reconnecting", () => api("POST", `/api/mcp/client/${encodeURIComponent(name)}/reconnect`));
}

function remove(name) {
  if (!confirm(`Delete the MCP client ${name}? Its server is stopped and its tools disappear.`)) return;
  act(name, "Deleting", () => api("DELETE", `/api/mcp/client/${encodeURIComponent(name)}`));
}

// ---- the form -------------------------------------------------------------------------------

function showForm(show) {
  form.hidden = !show;
  $("add-client").setAttribute("aria-expanded", String(show));
  if (show) $("f-name").focus();
  else $("add-client").focus();
}

function syncVisibility() {
  const type = $("f-type").value;
  for (const part of form.querySelectorAll("[data-when]")) {
    part.hidden = !part.dataset.when.split(" ").includes(type);
  }
  const auth = $("f-auth").value;
  for (const part of form.querySelectorAll("[data-when-auth]")) {
    part.hidden = !part.dataset.whenAuth.split(" ").includes(auth);
  }
}

function reset() {
  form.reset();
  errors.clear();
  editing = null;
  $("f-name").disabled = false;
  $("client-form-title").textContent = "Add an MCP client";
  $("save-client").textContent = "Add client";
  syncVisibility();
}

function edit(client) {
  reset();
  editing = client.name;
  const c = client.config;
  $("client-form-title").textContent = `Edit ${client.name}`;
  $("save-client").textContent = "Save and reconnect";
  $("f-name").value = c.name;
  $("f-name").disabled = true;
  $("f-type").value = c.connection_type;
  $("f-command").value = c.stdio_config?.command ?? "";
  $("f-args").value = (c.stdio_config?.args ?? []).join("\n");
  $("f-envs").value = (c.stdio_config?.envs ?? []).join("\n");
  $("f-url").value = c.connection_string ?? "";
  $("f-headers").value = Object.entries(c.headers ?? {}).map(([k, v]) => `${k}: ${v}`).join("\n");
  $("f-auth").value = c.auth_type ?? "headers";
  $("f-client-id").value = c.oauth_config?.client_id ?? "";
  $("f-client-secret").value = c.oauth_config?.client_secret ?? "";
  $("f-scopes").value = (c.oauth_config?.scopes ?? []).join(" ");
  $("f-execute").value = c.tools_to_execute === undefined || c.tools_to_execute === null ? "*" : c.tools_to_execute.join(", ");
  $("f-skip").value = (c.tools_to_skip ?? []).join(", ");
  $("f-auto").value = (c.tools_to_auto_execute ?? []).join(", ");
  $("f-timeout").value = c.tool_execution_timeout ?? "";
  $("f-code-mode").checked = Boolean(c.is_code_mode_client);
  syncVisibility();
  showForm(true);
}

/** The client object the form describes, in the API's (Bifrost's) shape. */
function formClient() {
  const type = $("f-type").value;
  const client = { name: $("f-name").value.trim(), connection_type: type };
  if (type === "stdio") {
    client.stdio_config = { command: $("f-command").value.trim(), args: lines($("f-args").value), envs: lines($("f-envs").value) };
  } else {
    client.connection_string = $("f-url").value.trim();
    const headers = {};
    for (const line of lines($("f-headers").value)) {
      const at = line.indexOf(":");
      if (at > 0) headers[line.slice(0, at).trim()] = line.slice(at + 1).trim();
      else headers[line] = "";
    }
    if (Object.keys(headers).length) client.headers = headers;
    const auth = $("f-auth").value;
    if (auth !== "headers") {
      client.auth_type = auth;
      const oauth = {};
      const id = $("f-client-id").value.trim();
      const secret = $("f-client-secret").value.trim();
      const scopes = $("f-scopes").value.split(/\s+/).filter(Boolean);
      if (id) oauth.client_id = id;
      if (secret) oauth.client_secret = secret;
      if (scopes.length) oauth.scopes = scopes;
      client.oauth_config = oauth;
    }
  }
  const execute = $("f-execute").value.trim();
  client.tools_to_execute = execute === "*" ? ["*"] : list(execute);
  const skip = list($("f-skip").value);
  if (skip.length) client.tools_to_skip = skip;
  const auto = list($("f-auto").value);
  if (auto.length) client.tools_to_auto_execute = auto;
  const timeout = $("f-timeout").value.trim();
  if (timeout) client.tool_execution_timeout = Number(timeout);
  if ($("f-code-mode").checked) client.is_code_mode_client = true;
  return client;
}

async function save(event) {
  event.preventDefault();
  errors.clear();
  const client = formClient();
  if (!client.name) {
    errors.show({ status: 400, data: { error: { field: "name", message: "name: give the client a name" } } });
    return;
  }
  const name = editing ?? client.name;
  $("save-client").disabled = true;
  say(editing ? `Saving ${name} and reconnecting…` : `Adding ${name} and connecting…`);
  const result = editing
    ? await api("PUT", `/api/mcp/client/${encodeURIComponent(editing)}`, client)
    : await api("POST", "/api/mcp/client", client);
  $("save-client").disabled = false;
  if (result.status === 400 || result.status === 409) {
    say("");
    errors.show(result);
    return;
  }
  if (result.ok && result.data?.status === "pending_oauth") {
    say(`${name} was saved and waits for authorization: use its Authorize button.`);
  } else if (result.ok) {
    say(result.data?.message ?? "Saved.", "ok");
  } else {
    // Saved, but its server did not connect: the card shows why.
    say(errorMessage(result), "bad");
  }
  reset();
  showForm(false);
  await refresh();
}

$("add-client").addEventListener("click", () => {
  if (form.hidden || editing) {
    reset();
    showForm(true);
  } else {
    showForm(false);
  }
});
$("cancel-client").addEventListener("click", () => { reset(); showForm(false); });
form.addEventListener("keydown", (event) => {
  if (event.key === "Escape") { reset(); showForm(false); }
});
$("f-type").addEventListener("change", syncVisibility);
$("f-auth").addEventListener("change", syncVisibility);
form.addEventListener("submit", save);
syncVisibility();
poll(refresh, 2000);
