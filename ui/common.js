// What every page shares: the API call (with the CSRF token), a DOM builder that only ever
// sets text (so nothing an upstream names can become markup), the status line and polling.

const csrf = document.querySelector('meta[name="csrf-token"]')?.content ?? "";

/** Calls the management API; answers {ok, status, data}. A lost session goes to the login. */
export async function api(method, path, body) {
  const headers = { "x-csrf-token": csrf };
  if (body !== undefined) headers["content-type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
    });
  } catch (error) {
    return { ok: false, status: 0, data: { error: { type: "network", message: `codemode did not answer: ${error.message}` } } };
  }
  if (response.status === 401 && !path.startsWith("/v1/")) {
    const data = await response.json().catch(() => ({}));
    if (data?.error?.type === "unauthorized") {
      location.assign(`/login?next=${encodeURIComponent(location.pathname)}`);
    }
    return { ok: false, status: 401, data };
  }
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = { error: { type: "invalid_response", message: text } }; }
  return { ok: response.ok, status: response.status, data };
}

/** The message of a failed call's body. */
export function errorMessage(result) {
  return result.data?.error?.message ?? `HTTP ${result.status}`;
}

/** An element: h("td", {class: "num"}, "12"). Children are nodes or text. */
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "text") node.textContent = value;
    // Through the CSSOM: the page's CSP allows no inline style attribute.
    else if (name === "style") Object.assign(node.style, value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Says `message` in the page's status line (read out by screen readers). */
export function say(message, kind = "") {
  const status = document.getElementById("status");
  status.className = `status ${kind}`;
  status.textContent = message;
}

/** Runs `task` now and every `ms` while the page is visible; `task` returning false stops it. */
export function poll(task, ms) {
  let timer = null;
  const tick = async () => {
    timer = null;
    if (!document.hidden) {
      const again = await task();
      if (again === false) return;
    }
    timer = setTimeout(tick, ms);
  };
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && timer !== null) { clearTimeout(timer); tick(); }
  });
  tick();
}

/** A time in milliseconds since the epoch, as local date and time. */
export function formatTime(ms) {
  return new Date(ms).toLocaleString(undefined, { dateStyle: "short", timeStyle: "medium" });
}

/** Lines of a textarea, trimmed, empty ones left out. */
export function lines(text) {
  return text.split("\n").map((line) => line.trim()).filter(Boolean);
}

/** A comma- or newline-separated list. */
export function list(text) {
  return text.split(/[,\n]/).map((item) => item.trim()).filter(Boolean);
}

/** Shows API field errors next to their fields: inputs carry data-field="stdio_config.command". */
export class FieldErrors {
  constructor(form, general) {
    this.form = form;
    this.general = general;
  }

  clear() {
    for (const input of this.form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
    for (const note of this.form.querySelectorAll(".field-error")) note.textContent = "";
    this.general.textContent = "";
  }

  /** Puts the API's error next to its field (the body's `field`), or at the form's top. */
  show(result) {
    this.clear();
    const field = result.data?.error?.field ?? "";
    const message = errorMessage(result);
    const input = this.inputFor(field);
    if (!input) {
      this.general.textContent = message;
      this.general.focus();
      return;
    }
    const reason = message.startsWith(`${field}: `) ? message.slice(field.length + 2) : message;
    input.setAttribute("aria-invalid", "true");
    const note = this.form.querySelector(`#${input.getAttribute("aria-describedby")?.split(" ")[0]}`);
    if (note) note.textContent = reason;
    else this.general.textContent = message;
    input.focus();
  }

  inputFor(field) {
    if (!field || field === ".") return null;
    const inputs = [...this.form.querySelectorAll("[data-field]")].filter((input) => !input.closest("[hidden]"));
    // The most specific field that names this path or one of its parents.
    let best = null;
    for (const input of inputs) {
      const name = input.dataset.field;
      if (field === name || field.startsWith(`${name}.`) || field.startsWith(`${name}[`)) {
        if (!best || name.length > best.dataset.field.length) best = input;
      }
    }
    return best;
  }
}
