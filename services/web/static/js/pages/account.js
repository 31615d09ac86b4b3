// Every signed-in person: who they are, their password, and their API tokens (for scripts).

import { api } from "../api.js";
import { t } from "../i18n.js";
import { session } from "../session.js";
import { failure, field, h, onSubmit, replace, section, table, today } from "../ui.js";

// The change-password form: ``done`` runs once the new password is saved.
export function passwordForm(done, { forced = false } = {}) {
  const input = (name, autocomplete, testid) => h("input", { type: "password", name, autocomplete, required: true,
    "data-field": name, "data-testid": testid });
  const current = input("current_password", "current-password", "current-password");
  const fresh = input("new_password", "new-password", "new-password");
  const again = input("repeat_password", "new-password", "repeat-password");
  const submit = h("button", { type: "submit", class: "primary", "data-testid": "password-submit" }, t("password.submit"));
  const result = h("div", { class: "form-error" });
  const form = h("form", { class: "card password-form", "data-testid": "password-form", novalidate: true },
    h("h1", {}, t("password.title")),
    forced ? h("p", { class: "notice", "data-testid": "password-forced" }, t("password.forced")) : null,
    field(t("password.current"), current),
    field(t("password.new"), fresh, t("password.rules")),
    field(t("password.repeat"), again),
    result,
    h("div", { class: "actions" }, submit));
  onSubmit(form, submit, async () => {
    replace(result);
    if (fresh.value !== again.value) throw { status: 400, message: t("password.mismatch"), field: "repeat_password" };
    await api("ledger", "/v1/users/me/password", { method: "PUT",
      body: { current_password: current.value, new_password: fresh.value } });
    for (const el of [current, fresh, again]) el.value = "";
    replace(result, h("p", { class: "notice ok", role: "status", "data-testid": "password-changed" }, t("password.changed")));
    await done();
  }, { fallbackField: "new_password" });
  return form;
}

export async function accountPage(root) {
  const who = session.who;
  const tokensSlot = h("div", { "data-testid": "tokens" });
  root.append(
    h("h1", {}, t("account.me")),
    section(t("account.me"), h("dl", { class: "stats", "data-testid": "me" },
      h("dt", {}, t("users.name")), h("dd", {}, who.name),
      h("dt", {}, t("users.display_name")), h("dd", {}, who.display_name || ""),
      h("dt", {}, t("users.role")), h("dd", {}, t(`role.${who.role}`)),
      h("dt", {}, t("users.scope")), h("dd", {}, who.scope.length ? who.scope.join(", ") : t("account.scope_all")))),
    h("div", { class: "grid-2" }, passwordForm(async () => {}), section(t("tokens.title"), tokensSlot)),
  );
  await loadTokens();

  async function loadTokens() {
    const label = h("input", { type: "text", name: "label", maxlength: 100, required: true, "data-field": "label",
      "data-testid": "token-label" });
    const later = new Date(Date.now() + 90 * 86_400_000).toISOString().slice(0, 10);
    const expires = h("input", { type: "date", name: "expires_on", value: later, min: today(), "data-field": "expires_on",
      "data-testid": "token-expires" });
    const submit = h("button", { type: "submit", "data-testid": "token-submit" }, t("tokens.issue"));
    const issued = h("div", { class: "form-error" });
    const form = h("form", { class: "inline-form", novalidate: true }, field(t("tokens.label"), label),
      field(t("tokens.expires_on"), expires), submit, issued);
    onSubmit(form, submit, async () => {
      const made = await api("ledger", "/v1/users/me/tokens", { method: "POST",
        body: { label: label.value, expires_on: expires.value } });
      await loadTokens();
      tokensSlot.prepend(h("p", { class: "notice ok" }, t("tokens.issued"), " ",
        h("code", { "data-testid": "new-token" }, made.token)));
    }, { fallbackField: "label" });
    try {
      const { items } = await api("ledger", "/v1/users/me/tokens");
      const revoke = (row) => row.revoked_at ? t("tokens.revoked") : h("button", { type: "button", class: "small",
        "data-testid": `revoke-${row.token_id}`, onclick: async () => {
          try {
            await api("ledger", `/v1/users/me/tokens/${encodeURIComponent(row.token_id)}`, { method: "DELETE" });
            await loadTokens();
          } catch (exc) {
            tokensSlot.append(failure(exc));
          }
        } }, t("tokens.revoke"));
      replace(tokensSlot, h("p", { class: "muted" }, t("tokens.help")), table([
        { key: "label", label: t("tokens.label") },
        { key: "issued_at", label: t("tokens.issued_at"), render: (r) => r.issued_at.slice(0, 16).replace("T", " ") },
        { key: "expires_at", label: t("tokens.expires_on"), render: (r) => r.expires_at.slice(0, 10) },
        { key: "status", label: t("status"), render: revoke },
      ], items, { testid: "tokens-table", rowKey: "token_id", empty: t("tokens.none") }), form);
    } catch (exc) {
      replace(tokensSlot, failure(exc));
    }
  }
}
