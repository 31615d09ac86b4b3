// Board: preview a distribution (capital-days, pro-rata, floor, top-up, payout), declare
// it, approve it, and record the payments to each investor.

import { api, Submission } from "../api.js";
import { t } from "../i18n.js";
import { directory, projectPicker, session } from "../session.js";
import { failure, field, h, latest, money, onSubmit, parseFen, perform, replace, rowForm, section, table, today } from "../ui.js";

const SUMMARY_KEYS = ["gross_rent", "expenses", "management_fee", "tax", "net_profit", "pool", "retained",
  "total_capital_days", "total_top_up", "total_payout"];

let names = {};

function allocationTable(allocations, extra = [], testid = "allocations") {
  return table([
    { key: "investor_id", label: t("alloc.investor"), render: (a) => names[a.investor_id]
      ? [names[a.investor_id], " ", h("small", { class: "muted" }, a.investor_id)] : a.investor_id },
    { key: "investor_type", label: t("alloc.type"), render: (a) => t(`investor.${a.investor_type}`, {}, a.investor_type || "") },
    { key: "capital_days", label: t("alloc.capital_days"), money: true },
    { key: "pro_rata", label: t("alloc.pro_rata"), money: true },
    { key: "guaranteed_floor", label: t("alloc.floor"), money: true },
    { key: "top_up", label: t("alloc.top_up"), money: true },
    { key: "payout", label: t("alloc.payout"), money: true },
    ...extra,
  ], allocations, { testid, rowKey: "investor_id" });
}

// Rent or expenses recorded after an earlier distribution of the project was declared, dated in its period:
// they count here, once (DESIGN §6 step 1), and the board sees which ones.
function lateItems(d, testid = "late-items") {
  const items = d.late_items || [];
  if (!items.length) return null;
  return h("div", { class: "late-items" }, h("h4", {}, t("dist.late_items")),
    table([
      { key: "kind", label: t("late.kind"), render: (i) => t(`late.${i.kind}`, {}, i.kind) },
      { key: "date", label: t("late.date") },
      { key: "amount", label: t("late.amount"), money: true },
    ], items, { testid, rowKey: "event_id" }));
}

function summary(d) {
  return h("dl", { class: "stats wide", "data-testid": "distribution-summary" },
    SUMMARY_KEYS.filter((k) => d[k] !== undefined).flatMap((k) => [h("dt", {}, t(`dist.${k}`)), h("dd", { class: "num" }, money(d[k]))]));
}

export async function boardPage(root) {
  names = await directory();
  const year = new Date().getFullYear();
  const start = h("input", { type: "date", name: "period_start", value: `${year}-01-01`, "data-field": "period_start", "data-testid": "period-start" });
  const end = h("input", { type: "date", name: "period_end", value: `${year}-12-31`, "data-field": "period_end", "data-testid": "period-end" });
  const previewButton = h("button", { type: "submit", class: "primary", "data-testid": "preview" }, t("board.preview"));
  const declareButton = h("button", { type: "button", "data-testid": "declare", disabled: true }, t("board.declare"));
  const previewSlot = h("div", { "data-testid": "preview-result" });
  const listSlot = h("div", { "data-testid": "distributions" });
  const mayWrite = session.can("board");
  const mayPreview = session.can("board", "auditor");
  const declareSubmission = new Submission();
  let previewed = null;
  const listTurn = latest();
  const picker = await projectPicker(() => { previewed = null; replace(previewSlot); declareButton.disabled = true; loadList(); });
  const form = h("form", { class: "inline-form", "data-testid": "preview-form", novalidate: true },
    field(t("board.period_start"), start), field(t("board.period_end"), end), previewButton, mayWrite ? declareButton : null,
    h("div", { class: "form-error" }));
  root.append(
    h("h1", {}, t("nav.board")),
    h("div", { class: "toolbar" }, field(t("project"), picker)),
    mayPreview ? section(t("board.new"), h("p", { class: "muted" }, t("board.help")), form, previewSlot) : null,
    section(t("board.distributions"), listSlot),
  );
  for (const input of [start, end]) input.addEventListener("change", () => { declareButton.disabled = true; });

  const period = () => ({ period_start: start.value, period_end: end.value });
  const projectPath = (suffix) => `/v1/projects/${encodeURIComponent(session.projectId)}/${suffix}`;

  onSubmit(form, previewButton, async () => {
    previewed = await api("dividends", projectPath("distributions/preview"), { method: "POST", body: period() });
    replace(previewSlot, h("h3", {}, `${t("board.preview_of")} ${start.value} – ${end.value}`), summary(previewed),
      lateItems(previewed, "preview-late-items"), allocationTable(previewed.allocations || [], [], "preview-allocations"));
    declareButton.disabled = false;
  }, { failed: () => replace(previewSlot) });

  declareButton.addEventListener("click", async () => {
    await perform(form, declareButton, async () => {
      const declared = await api("dividends", projectPath("distributions"), { method: "POST", body: period(), submission: declareSubmission });
      replace(previewSlot, h("p", { class: "notice ok", role: "status", "data-testid": "declared" },
        `${t("board.declared")} ${declared.distribution_id || ""}`));
      await loadList();
    });
    declareButton.disabled = true;
  });

  async function loadList() {
    if (!session.projectId) {
      replace(listSlot, h("p", { class: "muted" }, t("rentals.no_project")));
      return;
    }
    const current = listTurn();
    try {
      const items = (await api("dividends", projectPath("distributions"))).items || [];
      if (!current()) return;
      items.sort((a, b) => (b.period_start || "").localeCompare(a.period_start || ""));
      replace(listSlot, items.length ? items.map(distributionCard) : h("p", { class: "muted" }, t("board.none")));
    } catch (exc) {
      if (current()) replace(listSlot, failure(exc));
    }
  }

  function distributionCard(d) {
    const approve = mayWrite && d.status === "declared"
      ? h("button", { type: "button", class: "primary small", "data-testid": `approve-${d.distribution_id}` }, t("board.approve"))
      : null;
    const errorSlot = h("div", { class: "form-error" });
    const card = h("article", { class: "distribution", "data-testid": `distribution-${d.distribution_id}`, "data-status": d.status },
      h("header", {}, h("strong", {}, `${d.period_start} – ${d.period_end}`), " ",
        h("span", { class: `tag ${d.status}`, "data-testid": "distribution-status" }, t(`status.${d.status}`, {}, d.status)), " ",
        d.fully_paid ? [h("span", { class: "tag paid" }, t("status.paid")), " "] : null,
        h("code", { class: "muted" }, d.distribution_id), " ", approve),
      summary(d), lateItems(d, `late-items-${d.distribution_id}`), errorSlot);
    const payable = mayWrite && d.status === "approved";
    const paidCol = { key: "paid", label: t("alloc.paid"), class: "num", render: (a) => (a.paid ? money(a.payment?.amount) : "—") };
    const payCol = { key: "pay", label: "", render: (a) => {
      if (a.paid) return h("span", { class: "tag paid", title: a.payment?.bank_reference || "" }, `${t("status.paid")} ${a.payment?.paid_on || ""}`);
      if (!payable || (parseFen(a.payout) ?? 0) === 0) return "";
      return h("button", { type: "button", class: "small", "data-testid": `pay-${a.investor_id}`,
        onclick: (ev) => openPayment(ev.target.closest("tr"), d, a) }, t("board.pay"));
    } };
    card.append(allocationTable(d.allocations || [], d.status === "declared" ? [] : [paidCol, payCol], `allocations-${d.distribution_id}`));
    if (approve) {
      const submission = new Submission();
      approve.addEventListener("click", () => perform(card, approve, async () => {
        await api("dividends", `/v1/distributions/${encodeURIComponent(d.distribution_id)}/approve`, { method: "POST", body: {}, submission });
        await loadList();
      }));
    }
    return card;
  }

  function openPayment(row, d, a) {
    const amount = h("input", { type: "text", name: "amount", class: "amount", value: a.payout, "data-field": "amount", "data-testid": "pay-amount" });
    const paidOn = h("input", { type: "date", name: "paid_on", value: today(), "data-field": "paid_on", "data-testid": "pay-date" });
    const reference = h("input", { type: "text", name: "bank_reference", required: true, "data-field": "bank_reference", "data-testid": "pay-reference" });
    const submit = h("button", { type: "submit", class: "primary small", "data-testid": "pay-submit" }, t("board.record_payment"));
    const submission = new Submission();
    const form = rowForm(row, "payment-row", {}, h("span", {}, names[a.investor_id] || a.investor_id), field(t("amount"), amount),
      field(t("board.paid_on"), paidOn), field(t("board.bank_reference"), reference), submit);
    if (!form) return;
    reference.focus();
    onSubmit(form, submit, async () => {
      await api("dividends", `/v1/distributions/${encodeURIComponent(d.distribution_id)}/payments`, { method: "POST", submission,
        body: { investor_id: a.investor_id, amount: amount.value.trim(), paid_on: paidOn.value, bank_reference: reference.value.trim() } });
      await loadList();
    });
  }

  await loadList();
}
