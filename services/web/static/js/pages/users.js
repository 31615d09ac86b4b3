// Admin: accounts for people (village accountants, park operators, board members, auditors), their
// one-time passwords, disabling them, and who signed in when.

import { api } from "../api.js";
import { t } from "../i18n.js";
import { collectives, projects, session } from "../session.js";
import { failure, field, h, onSubmit, replace, section, table } from "../ui.js";

const ROLES = ["accountant", "operator", "board", "auditor", "admin"];

function when(instant) {
  return instant ? instant.slice(0, 16).replace("T", " ") : "";
}

export async function usersPage(root) {
  const listSlot = h("div", { "data-testid": "users" });
  const signInsSlot = h("div", { "data-testid": "sign-ins" });
  const [villages, parks] = await Promise.all([collectives(), projects()]);
  root.append(
    h("h1", {}, t("nav.users")),
    section(t("users.create"), createForm()),
    section(t("users.list"), listSlot),
    section(t("users.sign_ins"), signInsSlot),
  );
  await Promise.all([loadList(), loadSignIns()]);

  function createForm() {
    const name = h("input", { type: "text", name: "name", required: true, autocomplete: "off", spellcheck: "false",
      "data-field": "name", "data-testid": "user-name", placeholder: "lianmeng-kuaiji" });
    const displayName = h("input", { type: "text", name: "display_name", required: true, maxlength: 50,
      "data-field": "display_name", "data-testid": "user-display-name" });
    const role = h("select", { name: "role", "data-field": "role", "data-testid": "user-role" },
      ROLES.map((r) => h("option", { value: r }, t(`role.${r}`))));
    const scope = h("select", { name: "scope", multiple: true, size: 6, "data-field": "scope", "data-testid": "user-scope" });
    const scopeField = field(t("users.scope"), scope, t("users.scope_hint"));
    const submit = h("button", { type: "submit", class: "primary", "data-testid": "user-submit" }, t("users.submit"));
    const result = h("div", { class: "form-error", "data-testid": "user-result" });
    const form = h("form", { class: "inline-form", "data-testid": "user-form", novalidate: true },
      field(t("users.name"), name, t("users.name_hint")), field(t("users.display_name"), displayName),
      field(t("users.role"), role), scopeField, submit, result);

    function fillScope() {
      const items = role.value === "accountant" ? villages.map((c) => [c.collective_id, c.name])
        : ["operator", "board"].includes(role.value) ? parks.map((p) => [p.project_id, p.name]) : [];
      replace(scope, items.map(([id, label]) => h("option", { value: id }, label && label !== id ? `${label} (${id})` : id)));
      scopeField.hidden = items.length === 0 && !["accountant", "operator", "board"].includes(role.value);
    }
    role.addEventListener("change", fillScope);
    fillScope();

    onSubmit(form, submit, async () => {
      replace(result);
      const made = await api("ledger", "/v1/users", { method: "POST", body: {
        name: name.value.trim(), display_name: displayName.value.trim(), role: role.value,
        scope: Array.from(scope.selectedOptions, (o) => o.value) } });
      replace(result, h("p", { class: "notice ok", role: "status", "data-testid": "user-created" },
        t("users.created", { name: made.name }), " ", h("code", { "data-testid": "one-time-password" }, made.one_time_password),
        h("br", {}), t("users.hand_over")));
      name.value = "";
      displayName.value = "";
      await loadList();
    }, { fallbackField: "name" });
    return form;
  }

  async function act(row, path, slot) {
    try {
      const answer = await api("ledger", `/v1/users/${encodeURIComponent(row.name)}/${path}`, { method: "POST",
        body: path === "password-reset" ? undefined : {} });
      await loadList();
      if (answer && answer.one_time_password) {
        listSlot.prepend(h("p", { class: "notice ok", role: "status", "data-testid": "reset-done" },
          t("users.reset_done", { name: row.name }), " ", h("code", { "data-testid": "reset-code" }, answer.one_time_password),
          h("br", {}), t("users.hand_over")));
      }
      await loadSignIns();
    } catch (exc) {
      slot.append(failure(exc));
    }
  }

  async function loadList() {
    try {
      const { items } = await api("ledger", "/v1/users");
      replace(listSlot, table([
        { key: "name", label: t("users.name") },
        { key: "display_name", label: t("users.display_name") },
        { key: "role", label: t("users.role"), render: (r) => t(`role.${r.role}`) },
        { key: "scope", label: t("users.scope"), render: (r) => r.scope.length ? r.scope.join(", ") : t("account.scope_all") },
        { key: "status", label: t("users.status"), render: (r) => h("span", { class: `tag ${r.status}`, "data-testid": "user-status" },
          r.status === "active" ? t("users.active") : t("users.disabled"),
          r.must_change_password ? ` · ${t("users.must_change")}` : "") },
        { key: "last_sign_in", label: t("users.last_sign_in"), render: (r) => when(r.last_sign_in) || t("users.never") },
        { key: "actions", label: t("users.actions"), render: (r) => {
          const cell = h("span", { class: "row-actions" });
          cell.append(h("button", { type: "button", class: "small", "data-testid": `reset-${r.name}`,
            onclick: () => act(r, "password-reset", cell) }, t("users.reset")));
          if (r.name !== session.who.name) {
            cell.append(" ", r.status === "active"
              ? h("button", { type: "button", class: "small", "data-testid": `disable-${r.name}`, onclick: () => act(r, "disable", cell) },
                t("users.disable"))
              : h("button", { type: "button", class: "small", "data-testid": `enable-${r.name}`, onclick: () => act(r, "enable", cell) },
                t("users.enable")));
          }
          return cell;
        } },
      ], items, { testid: "users-table", rowKey: "name" }));
    } catch (exc) {
      replace(listSlot, failure(exc));
    }
  }

  async function loadSignIns() {
    try {
      const { items } = await api("ledger", "/v1/sign-ins", { query: { limit: 50 } });
      replace(signInsSlot, table([
        { key: "at", label: t("signins.at"), render: (r) => when(r.at) },
        { key: "name", label: t("users.name") },
        { key: "address", label: t("signins.address") },
        { key: "outcome", label: t("signins.outcome"), render: (r) => h("span", { class: `tag ${r.outcome === "signed_in" ? "met" : "weak"}` },
          t(`outcome.${r.outcome}`)) },
        { key: "ended_at", label: t("signins.ended"), render: (r) => r.ended_at ? `${when(r.ended_at)} ${t(`end.${r.end_reason}`)}` : "" },
      ], items, { testid: "sign-ins-table" }));
    } catch (exc) {
      replace(signInsSlot, failure(exc));
    }
  }
}
