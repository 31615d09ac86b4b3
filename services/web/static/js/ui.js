// Small DOM helpers, money formatting (integer fen, never floats) and field-level errors.

import { t } from "./i18n.js";

// h("td", {class: "num"}, "12.00") -> element. Attributes starting with "on" are listeners.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

// --- money: wire strings "1234.50" <-> integer fen ------------------------------------------

const AMOUNT_RE = /^(-?)(\d{1,13})(?:\.(\d{1,2}))?$/;

// "1234.5" -> 123450; anything that is not a yuan amount with at most two decimals -> null.
export function parseFen(text) {
  const match = AMOUNT_RE.exec(String(text ?? "").trim().replaceAll(",", ""));
  if (!match) return null;
  const fen = Number(match[2]) * 100 + Number((match[3] || "").padEnd(2, "0"));
  return match[1] ? -fen : fen;
}

// 123450 -> "1234.50" (the wire form).
export function fenToWire(fen) {
  const sign = fen < 0 ? "-" : "";
  const abs = Math.abs(fen);
  return `${sign}${Math.floor(abs / 100)}.${String(abs % 100).padStart(2, "0")}`;
}

// "1234567.50" -> "1,234,567.50" for display; non-amounts are shown as they are.
export function money(value) {
  if (value === undefined || value === null || value === "") return "";
  const fen = parseFen(value);
  if (fen === null) return String(value);
  const wire = fenToWire(fen);
  const [whole, cents] = wire.replace("-", "").split(".");
  return `${fen < 0 ? "-" : ""}${whole.replace(/\B(?=(\d{3})+(?!\d))/g, ",")}.${cents}`;
}

export function today() {
  const d = new Date();
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
}

// --- tables -------------------------------------------------------------------------------

// columns: [{key, label, money?: bool, render?: (row) => node|string, class?}]
// rowKey names the field whose value each <tr> carries as data-key (for links and tests).
export function table(columns, rows, { footer, empty, testid, rowKey } = {}) {
  const head = h("tr", {}, columns.map((c) => h("th", { class: c.money ? "num" : c.class }, c.label)));
  const body = rows.map((row) => h("tr", { "data-key": rowKey ? row[rowKey] : null }, columns.map((c) => {
    const value = c.render ? c.render(row) : row[c.key];
    return h("td", { class: c.money ? "num" : c.class }, c.money && !c.render ? money(value) : value);
  })));
  if (!rows.length) body.push(h("tr", {}, h("td", { colspan: columns.length, class: "muted" }, empty || t("empty"))));
  const foot = footer ? h("tfoot", {}, h("tr", {}, columns.map((c) => {
    const value = footer[c.key];
    return h("td", { class: c.money ? "num" : c.class }, c.money ? money(value) : value);
  }))) : null;
  return h("table", { class: "data", "data-testid": testid }, h("thead", {}, head), h("tbody", {}, body), foot);
}

export function section(title, ...children) {
  return h("section", { class: "card" }, h("h2", {}, title), children);
}

export function field(label, input, hint) {
  return h("label", { class: "field" }, h("span", { class: "field-label" }, label), input, hint ? h("small", { class: "muted" }, hint) : null);
}

// --- errors next to the field they name --------------------------------------------------

// The services name a field as a dotted path ("lines.1.debit"); accept "lines[1].debit" too.
export function normaliseField(name) {
  return name ? String(name).replace(/\[(\d+)\]/g, ".$1").replace(/^(json|body)\./, "") : null;
}

export function clearErrors(container) {
  for (const el of container.querySelectorAll(".field-error")) el.remove();
  for (const el of container.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
}

// Show an error next to the element whose data-field is the error's field (or the nearest
// enclosing one: "lines.1.debit" falls back to "lines.1", then "lines"); else in the form's
// general error slot.
export function showError(container, error, fallbackField) {
  const message = describeError(error);
  let name = normaliseField(error.field) || fallbackField || null;
  let target = null;
  while (name && !target) {
    target = container.querySelector(`[data-field="${CSS.escape(name)}"]`);
    if (!target) name = name.includes(".") ? name.slice(0, name.lastIndexOf(".")) : null;
  }
  const note = h("p", { class: "field-error", role: "alert", "data-error-for": normaliseField(error.field) || "" }, message);
  if (target) {
    target.setAttribute("aria-invalid", "true");
    const slot = target.closest("td, label, .field") || target;
    if (slot === target) target.after(note);
    else slot.append(note);
    const focusable = target.matches("input, select, textarea") ? target : target.querySelector("input, select");
    if (focusable) focusable.focus();
  } else {
    const slot = container.querySelector(".form-error") || container;
    slot.append(note);
  }
  return note;
}

export function describeError(error) {
  if (!error || error.status === undefined) return String(error);
  if (error.status === 0) return t("error.network");
  if (error.status === 401) return t("error.401");
  if (error.status === 403) return `${t("error.403")} (${error.message})`;
  if (error.status >= 500) return `${t("error.5xx")} ${error.message || ""}`;
  return error.message;
}

// A full-card message for a failed load.
export function failure(error) {
  return h("p", { class: "notice error", role: "alert" }, describeError(error));
}

export function busy(button, on) {
  button.disabled = on;
  button.classList.toggle("busy", on);
}

// A write from a form: on submit, clear the form's errors, mark `button` busy and run `action`; a failure
// is shown on the form (next to the field it names, else `fallbackField`, else in its error slot) after
// `failed(exc)` runs. The button is free again afterwards, whatever happened.
export function onSubmit(form, button, action, { fallbackField, failed } = {}) {
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    return perform(form, button, action, { fallbackField, failed });
  });
}

// The same for any trigger (a button's click): errors are shown in `where`.
export async function perform(where, button, action, { fallbackField, failed } = {}) {
  clearErrors(where);
  busy(button, true);
  try {
    await action();
  } catch (exc) {
    failed?.(exc);
    showError(where, exc, fallbackField);
  } finally {
    busy(button, false);
  }
}

// A form in a table row of its own under `row` (a payment, a reversal), with a cancel button and an
// error slot; null when such a row is open already.
export function rowForm(row, rowClass, formAttrs, ...children) {
  if (row.nextElementSibling?.classList.contains(rowClass)) return null;
  const form = h("form", { class: "inline-form", novalidate: true, ...formAttrs }, ...children,
    h("button", { type: "button", class: "small", onclick: () => formRow.remove() }, t("cancel")),
    h("div", { class: "form-error" }));
  const formRow = h("tr", { class: rowClass }, h("td", { colspan: row.children.length }, form));
  row.after(formRow);
  return form;
}

export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

// Answers can arrive out of order (a slow request for an old date after a fast one for the
// new date). Each view slot takes a ticket per request and renders only if its ticket is
// still the newest: `const current = turn(); const body = await api(...); if (!current()) return;`
export function latest() {
  let newest = 0;
  return () => {
    const ticket = ++newest;
    return () => ticket === newest;
  };
}
