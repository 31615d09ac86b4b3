// Members (成员与收益分配, DESIGN §11): a village's register of households and shares, and its year-end
// plans — preview with the household split, propose, approve with the meeting's vote, pay each household —
// and the public notice (公示) of an approved plan. The members service decides who may do what.

import { api, Submission } from "../api.js";
import { t } from "../i18n.js";
import { collectivePicker, session } from "../session.js";
import { failure, fenToWire, field, h, latest, money, onSubmit, parseFen, perform, replace, rowForm, section, table, today } from "../ui.js";

const FIGURES = ["distributable", "net_income", "brought_forward", "reserve", "welfare", "members_total", "undistributed"];

// The village's share kinds in the charter's order, with their names (set when a village is shown).
let kinds = [];

function holdingsText(holdings) {
  const order = (kind) => { const i = kinds.findIndex((k) => k.kind === kind); return i < 0 ? kinds.length : i; };
  const name = (kind) => kinds.find((k) => k.kind === kind)?.name || t(`kind.${kind}`, {}, kind);
  return Object.entries(holdings || {}).sort(([a], [b]) => order(a) - order(b) || a.localeCompare(b))
    .map(([kind, n]) => `${name(kind)} ${n}`).join("，");
}

function figures(plan) {
  return h("dl", { class: "stats wide", "data-testid": "plan-figures" },
    FIGURES.filter((k) => plan[k] !== undefined && plan[k] !== null)
      .flatMap((k) => [h("dt", {}, t(`plan.${k}`)), h("dd", { class: "num", "data-figure": k }, money(plan[k]))]));
}

function allocationTable(allocations, extra = [], testid = "plan-allocations") {
  let total = 0;
  for (const a of allocations) total += parseFen(a.amount) ?? 0;
  return table([
    { key: "household_id", label: t("members.household") },
    { key: "head_name", label: t("members.head"), render: (a) => a.head_name || a.head_name_masked || "" },
    { key: "holdings", label: t("members.holdings"), render: (a) => holdingsText(a.holdings) },
    { key: "weight", label: t("members.weight"), class: "num" },
    { key: "amount", label: t("members.amount"), money: true },
    ...extra,
  ], allocations, { testid, rowKey: "household_id",
    footer: { household_id: t("total"), head_name: `${allocations.length} ${t("members.households_unit")}`, amount: fenToWire(total) } });
}

export async function membersPage(root) {
  const mayWrite = session.can("accountant");
  const mayApprove = session.can("board"); // the village's board records the meeting's vote
  const registerSlot = h("div", { "data-testid": "register" });
  const previewSlot = h("div", { "data-testid": "plan-preview" });
  const plansSlot = h("div", { "data-testid": "plans" });
  const registerTurn = latest();
  const plansTurn = latest();
  const picker = await collectivePicker(() => { replace(previewSlot); load(); });
  const lastYear = new Date().getFullYear() - 1;
  const year = h("input", { type: "number", name: "year", value: lastYear, min: 1990, max: 2100, "data-field": "year", "data-testid": "plan-year" });
  const rate = h("input", { type: "text", name: "reserve_rate", value: "0.10", class: "amount", "data-field": "reserve_rate", "data-testid": "plan-rate" });
  const welfare = h("input", { type: "text", name: "welfare", value: "0.00", class: "amount", "data-field": "welfare", "data-testid": "plan-welfare" });
  const total = h("input", { type: "text", name: "members_total", value: "", class: "amount", "data-field": "members_total", "data-testid": "plan-total" });
  const recordDate = h("input", { type: "date", name: "record_date", value: `${lastYear}-12-31`, "data-field": "record_date", "data-testid": "plan-record-date" });
  const previewButton = h("button", { type: "submit", class: "primary", "data-testid": "plan-preview-button" }, t("members.preview"));
  const proposeButton = h("button", { type: "button", "data-testid": "plan-propose", disabled: true }, t("members.propose"));
  const proposal = new Submission();
  const form = h("form", { class: "inline-form", "data-testid": "plan-form", novalidate: true },
    field(t("year"), year), field(t("plan.reserve_rate"), rate), field(t("plan.welfare"), welfare),
    field(t("plan.members_total"), total), field(t("plan.record_date"), recordDate), previewButton,
    mayWrite ? proposeButton : null, h("div", { class: "form-error" }));
  root.append(
    h("h1", {}, t("nav.members")),
    h("div", { class: "toolbar" }, field(t("collective"), picker)),
    section(t("members.plans"), plansSlot),
    mayWrite ? section(t("members.new_plan"), h("p", { class: "muted" }, t("members.plan_help")), form, previewSlot) : null,
    section(t("members.register"), registerSlot),
  );
  for (const input of [year, rate, welfare, total, recordDate]) input.addEventListener("input", () => { proposeButton.disabled = true; });

  const village = (suffix) => `/v1/collectives/${encodeURIComponent(session.collectiveId)}/${suffix}`;
  const planBody = () => ({ year: Number(year.value), reserve_rate: rate.value.trim(), welfare: welfare.value.trim(),
    members_total: total.value.trim(), record_date: recordDate.value });

  onSubmit(form, previewButton, async () => {
    const plan = await api("members", village("plans/preview"), { method: "POST", body: planBody() });
    replace(previewSlot, h("h3", {}, t("members.preview_of", { year: plan.year ?? year.value })), figures(plan),
      allocationTable(plan.allocations || [], [], "preview-allocations"));
    proposeButton.disabled = false;
  }, { failed: () => replace(previewSlot) });

  proposeButton.addEventListener("click", async () => {
    await perform(form, proposeButton, async () => {
      const plan = await api("members", village("plans"), { method: "POST", body: planBody(), submission: proposal });
      replace(previewSlot, h("p", { class: "notice ok", role: "status", "data-testid": "plan-proposed" }, `${t("members.proposed")} ${plan.plan_id}`));
      await loadPlans();
    });
    proposeButton.disabled = true;
  });

  async function load() {
    kinds = [];
    if (session.collectiveId) {
      try {
        kinds = (await api("members", village("charter"))).share_kinds || [];
      } catch {
        kinds = []; // a village without a charter yet: kinds shown by their ids
      }
    }
    await Promise.all([loadPlans(), loadRegister()]);
  }

  async function loadRegister() {
    if (!session.collectiveId) {
      replace(registerSlot, h("p", { class: "muted" }, t("books.no_collective")));
      return;
    }
    const current = registerTurn();
    try {
      const items = (await api("members", village("households"))).items || [];
      if (!current()) return;
      replace(registerSlot, table([
        { key: "household_id", label: t("members.household") },
        { key: "head_name", label: t("members.head") },
        { key: "members", label: t("members.people"), class: "num", render: (hh) => String(Array.isArray(hh.members) ? hh.members.length : (hh.members ?? "")) },
        { key: "holdings", label: t("members.holdings"), render: (hh) => holdingsText(hh.holdings) },
      ], items, { testid: "households", rowKey: "household_id", empty: t("members.no_households") }));
    } catch (exc) {
      if (current()) replace(registerSlot, failure(exc));
    }
  }

  async function loadPlans() {
    if (!session.collectiveId) {
      replace(plansSlot);
      return;
    }
    const current = plansTurn();
    try {
      const items = (await api("members", village("plans"))).items || [];
      if (!current()) return;
      items.sort((a, b) => (b.year || 0) - (a.year || 0));
      const cards = [];
      for (const summary of items) {
        const plan = summary.allocations ? summary : await api("members", village(`plans/${encodeURIComponent(summary.plan_id)}`));
        if (!current()) return;
        cards.push(planCard(plan));
      }
      replace(plansSlot, cards.length ? cards : h("p", { class: "muted" }, t("members.no_plans")));
    } catch (exc) {
      if (current()) replace(plansSlot, failure(exc));
    }
  }

  function planCard(plan) {
    const pid = plan.plan_id;
    const path = village(`plans/${encodeURIComponent(pid)}`);
    const errorSlot = h("div", { class: "form-error" });
    const notice = plan.status === "approved" || plan.status === "paid"
      ? h("a", { href: `/notice/${encodeURIComponent(session.collectiveId)}/${encodeURIComponent(pid)}`, target: "_blank",
        rel: "noopener", "data-testid": `notice-${pid}` }, t("members.notice"))
      : null;
    const card = h("article", { class: "distribution", "data-testid": `plan-${pid}`, "data-status": plan.status },
      h("header", {}, h("strong", {}, t("members.plan_of", { year: plan.year })), " ",
        h("span", { class: `tag ${plan.status}`, "data-testid": "plan-status" }, t(`status.${plan.status}`, {}, plan.status)), " ",
        h("code", { class: "muted" }, pid), " ", notice),
      figures(plan), plan.vote ? voteLine(plan.vote) : null, errorSlot);
    if (plan.status === "proposed" && mayApprove) card.append(approveForm(path));
    const payable = mayWrite && plan.status === "approved";
    const paidCol = { key: "paid", label: t("alloc.paid"), render: (a) => {
      if (a.paid) return h("span", { class: "tag paid", title: a.payment?.bank_reference || "" }, `${t("status.paid")} ${a.payment?.paid_on || ""}`);
      if (!payable || (parseFen(a.amount) ?? 0) === 0) return "—";
      return h("button", { type: "button", class: "small", "data-testid": `pay-${a.household_id}`,
        onclick: (ev) => openPayment(ev.target.closest("tr"), path, a) }, t("board.pay"));
    } };
    card.append(allocationTable(plan.allocations || [], plan.status === "proposed" ? [] : [paidCol], `allocations-${pid}`));
    return card;
  }

  function voteLine(vote) {
    return h("p", { class: "muted", "data-testid": "plan-vote" }, t("members.vote_line", {
      body: t(`body.${vote.body}`, {}, vote.body), date: vote.meeting_on, entitled: vote.entitled, present: vote.present,
      for: vote.for, against: vote.against, abstain: vote.abstain }));
  }

  function approveForm(path) {
    const inputs = {
      body: h("select", { name: "body", "data-field": "vote.body" }, ["representatives", "members"].map((b) => h("option", { value: b }, t(`body.${b}`)))),
      meeting_on: h("input", { type: "date", name: "meeting_on", value: today(), "data-field": "vote.meeting_on" }),
    };
    for (const k of ["entitled", "present", "for", "against", "abstain"]) {
      inputs[k] = h("input", { type: "number", min: 0, name: k, class: "count", "data-field": `vote.${k}`, "data-testid": `vote-${k}` });
    }
    const submit = h("button", { type: "submit", class: "primary small", "data-testid": "plan-approve" }, t("members.approve"));
    const submission = new Submission();
    const form = h("form", { class: "inline-form", novalidate: true }, h("strong", {}, t("members.vote")),
      Object.entries(inputs).map(([k, input]) => field(t(`vote.${k}`), input)), submit, h("div", { class: "form-error" }));
    onSubmit(form, submit, async () => {
      const vote = { body: inputs.body.value, meeting_on: inputs.meeting_on.value };
      for (const k of ["entitled", "present", "for", "against", "abstain"]) vote[k] = Number(inputs[k].value || 0);
      await api("members", `${path}/approve`, { method: "POST", body: { vote }, submission });
      await loadPlans();
    });
    return form;
  }

  function openPayment(row, path, a) {
    const paidOn = h("input", { type: "date", name: "paid_on", value: today(), "data-field": "paid_on" });
    const reference = h("input", { type: "text", name: "bank_reference", required: true, "data-field": "bank_reference", "data-testid": "pay-reference" });
    const submit = h("button", { type: "submit", class: "primary small", "data-testid": "pay-submit" }, t("board.record_payment"));
    const submission = new Submission();
    const form = rowForm(row, "payment-row", {}, h("span", {}, `${a.household_id} ${money(a.amount)}`),
      field(t("board.paid_on"), paidOn), field(t("board.bank_reference"), reference), submit);
    if (!form) return;
    reference.focus();
    onSubmit(form, submit, async () => {
      await api("members", `${path}/payments`, { method: "POST", submission,
        body: { household_id: a.household_id, amount: a.amount, paid_on: paidOn.value, bank_reference: reference.value.trim() } });
      await loadPlans();
    });
  }

  await load();
}
