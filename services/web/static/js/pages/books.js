// Accountant: the village's trial balance and entries (with reversal), its dividends by
// project and year, the 收益及收益分配表, and the Excel export.

import { api, download, Submission } from "../api.js";
import { t } from "../i18n.js";
import { accountName, accounts, collectivePicker, session } from "../session.js";
import { busy, failure, field, h, latest, money, onSubmit, replace, rowForm, section, table, today } from "../ui.js";

function toolbar(...items) {
  return h("div", { class: "toolbar" }, items);
}

function lineText(line) {
  const side = line.debit !== undefined && line.debit !== null ? "debit" : "credit";
  return h("div", { class: `entry-line ${side}` },
    h("span", { class: `side ${side}` }, t(`side.${side}`)), " ",
    h("code", {}, line.account), " ", h("span", { class: "muted" }, accountName(line.account)), " ",
    h("span", { class: "num" }, money(line[side])));
}

export async function booksPage(root) {
  await accounts();
  const asOf = h("input", { type: "date", value: today(), "data-testid": "as-of", name: "as_of" });
  const tbSlot = h("div", { "data-testid": "trial-balance" });
  const month = today().slice(0, 7);
  const monthFrom = h("input", { type: "month", value: `${month.slice(0, 4)}-01`, "data-testid": "balances-from", name: "from", "data-field": "from" });
  const monthTo = h("input", { type: "month", value: month, "data-testid": "balances-to", name: "to", "data-field": "to" });
  const balancesSlot = h("div", { "data-testid": "account-balances" });
  const entriesSlot = h("div", { "data-testid": "entries" });
  const exportButton = session.who.features?.export_xlsx
    ? h("button", { type: "button", "data-testid": "export-xlsx", onclick: () => exportXlsx(exportButton) }, t("books.export"))
    : null;
  const turns = { tb: latest(), entries: latest(), balances: latest() };
  const picker = await collectivePicker(() => load());
  root.append(
    h("h1", {}, t("nav.books")),
    toolbar(field(t("collective"), picker), field(t("books.as_of"), asOf), exportButton),
    section(t("books.trial_balance"), tbSlot),
    section(t("books.account_balances"), toolbar(field(t("books.from_month"), monthFrom), field(t("books.to_month"), monthTo)), balancesSlot),
    section(t("books.entries"), entriesSlot),
  );
  asOf.addEventListener("change", () => load());
  monthFrom.addEventListener("change", () => session.collectiveId && loadBalances(session.collectiveId));
  monthTo.addEventListener("change", () => session.collectiveId && loadBalances(session.collectiveId));

  async function load() {
    const cid = session.collectiveId;
    if (!cid) {
      replace(tbSlot, h("p", { class: "muted" }, t("books.no_collective")));
      return;
    }
    await Promise.all([loadTrialBalance(cid), loadBalances(cid), loadEntries(cid)]);
  }

  async function loadBalances(cid) {
    const current = turns.balances();
    try {
      const body = await api("ledger", `/v1/collectives/${encodeURIComponent(cid)}/account-balances`, { query: { from: monthFrom.value, to: monthTo.value } });
      if (!current()) return;
      const totals = body.totals || {};
      const side = (r) => t(`side.${r.normal_side}`);
      replace(balancesSlot, table([
        { key: "code", label: t("account.code"), render: (r) => h("code", {}, r.code) },
        { key: "name", label: t("account.name") },
        { key: "normal_side", label: t("books.normal_side"), render: side },
        { key: "opening_balance", label: t("books.opening"), money: true },
        { key: "debit", label: t("books.period_debit"), money: true },
        { key: "credit", label: t("books.period_credit"), money: true },
        { key: "closing_balance", label: t("books.closing"), money: true },
      ], body.accounts || [], { footer: { code: t("total"), debit: totals.debit, credit: totals.credit }, testid: "account-balances-table", rowKey: "code", empty: t("books.no_entries") }));
    } catch (exc) {
      if (current()) replace(balancesSlot, failure(exc));
    }
  }

  async function loadTrialBalance(cid) {
    const current = turns.tb();
    try {
      const tb = await api("ledger", `/v1/collectives/${encodeURIComponent(cid)}/trial-balance`, { query: { as_of: asOf.value } });
      if (!current()) return;
      const totals = tb.totals || {};
      const balanced = totals.debit === totals.credit;
      replace(tbSlot,
        table([
          { key: "code", label: t("account.code"), render: (r) => h("code", {}, r.code) },
          { key: "name", label: t("account.name") },
          { key: "debit", label: t("debit.total"), money: true },
          { key: "credit", label: t("credit.total"), money: true },
          { key: "balance", label: t("balance"), money: true },
        ], tb.accounts || [], { footer: { code: t("total"), debit: totals.debit, credit: totals.credit }, testid: "trial-balance-table", rowKey: "code" }),
        h("p", { class: balanced ? "badge ok" : "badge bad", "data-testid": "tb-status" },
          balanced ? t("books.balanced") : t("books.unbalanced")));
    } catch (exc) {
      if (current()) replace(tbSlot, failure(exc));
    }
  }

  async function loadEntries(cid) {
    const current = turns.entries();
    try {
      const entries = (await api("ledger", `/v1/collectives/${encodeURIComponent(cid)}/entries`)).items || [];
      if (!current()) return;
      entries.sort((a, b) => (b.date || "").localeCompare(a.date || "") || (b.voucher_no || "").localeCompare(a.voucher_no || ""));
      const mayReverse = session.can("accountant");
      replace(entriesSlot, table([
        { key: "date", label: t("date") },
        { key: "voucher_no", label: t("books.voucher_no"), render: (e) => h("code", { title: e.entry_id, "data-testid": "voucher-no" }, e.voucher_no || shortId(e.entry_id)) },
        { key: "attachments", label: t("books.attachments"), class: "num", render: (e) => (e.attachments ?? "") === "" ? "" : String(e.attachments) },
        { key: "memo", label: t("memo"), render: (e) => [e.memo || "", e.reverses ? h("small", { class: "muted" }, ` ${t("books.reverses")} ${shortId(e.reverses)}`) : null] },
        { key: "lines", label: t("books.lines"), render: (e) => (e.lines || []).map(lineText) },
        { key: "origin", label: t("books.origin"), render: (e) => t(`origin.${e.origin?.kind || "manual"}`) },
        { key: "actions", label: "", render: (e) => {
          if (e.reversed_by) return h("span", { class: "muted" }, t("books.reversed"));
          if (!mayReverse || e.reverses) return "";
          return h("button", { type: "button", class: "small", "data-testid": `reverse-${e.entry_id}`,
            onclick: (ev) => openReverse(ev.target.closest("tr"), e) }, t("books.reverse"));
        } },
      ], entries, { testid: "entries-table", empty: t("books.no_entries"), rowKey: "entry_id" }));
    } catch (exc) {
      if (current()) replace(entriesSlot, failure(exc));
    }
  }

  function openReverse(row, entry) {
    const date = h("input", { type: "date", name: "date", value: today(), "data-field": "date" });
    const reason = h("input", { type: "text", name: "reason", required: true, "data-field": "reason", size: 30 });
    const submit = h("button", { type: "submit", class: "primary small" }, t("books.reverse_confirm"));
    const submission = new Submission();
    const form = rowForm(row, "reverse-row", { "data-testid": "reverse-form", novalidate: false },
      field(t("date"), date), field(t("books.reason"), reason), submit);
    if (!form) return;
    reason.focus();
    onSubmit(form, submit, async () => {
      await api("ledger", `/v1/collectives/${encodeURIComponent(session.collectiveId)}/entries/${encodeURIComponent(entry.entry_id)}/reverse`,
        { method: "POST", body: { date: date.value, reason: reason.value }, submission });
      await load();
    });
  }

  async function exportXlsx(button) {
    busy(button, true);
    try {
      await download("/api/export.xlsx", { collective_id: session.collectiveId }, `baotuan-${session.collectiveId}.xlsx`);
    } catch (exc) {
      button.after(failure(exc));
    } finally {
      busy(button, false);
    }
  }

  await load();
}

function shortId(id) {
  return id && id.length > 12 ? `${id.slice(0, 8)}…` : id || "";
}

function yearInput() {
  return h("input", { type: "number", min: 2000, max: 2100, step: 1, value: new Date().getFullYear(), name: "year", "data-testid": "year", class: "year" });
}

export async function dividendsPage(root) {
  const year = yearInput();
  const slot = h("div", { "data-testid": "dividends" });
  const picker = await collectivePicker(() => load());
  root.append(h("h1", {}, t("nav.dividends")), toolbar(field(t("collective"), picker), field(t("year"), year)), section(t("dividends.title"), slot));
  year.addEventListener("change", () => load());
  const turn = latest();

  async function load() {
    const current = turn();
    try {
      const body = await api("dividends", `/v1/investors/${encodeURIComponent(session.collectiveId)}/dividends`, { query: { year: year.value } });
      if (!current()) return;
      const items = body.items || [];
      const byProject = new Map();
      for (const item of items) {
        if (!byProject.has(item.project_id)) byProject.set(item.project_id, []);
        byProject.get(item.project_id).push(item);
      }
      const parts = [];
      for (const [projectId, rows] of byProject) {
        parts.push(h("h3", {}, `${t("project")} ${projectId}`), table([
          { key: "period", label: t("period"), render: (r) => `${r.period_start} – ${r.period_end}` },
          { key: "status", label: t("status"), render: (r) => t(`status.${r.status}`) },
          { key: "capital_days", label: t("alloc.capital_days"), money: true },
          { key: "pro_rata", label: t("alloc.pro_rata"), money: true },
          { key: "top_up", label: t("alloc.top_up"), money: true },
          { key: "payout", label: t("alloc.payout"), money: true },
          { key: "paid", label: t("alloc.paid"), class: "num", render: (r) => (r.paid ? money(r.payment?.amount) : "—") },
          { key: "paid_on", label: t("board.paid_on"), render: (r) => r.payment?.paid_on || "" },
        ], rows, { testid: `dividends-${projectId}` }));
      }
      if (items.length) parts.push(h("p", { class: "summary", "data-testid": "dividends-total" }, `${t("dividends.total_payout")}: `,
        h("strong", {}, money(body.total_payout)), `　${t("alloc.paid")}: `, h("strong", {}, money(body.total_paid))));
      replace(slot, parts.length ? parts : h("p", { class: "muted" }, t("dividends.none")));
    } catch (exc) {
      if (current()) replace(slot, failure(exc));
    }
  }
  await load();
}

export async function statementPage(root) {
  const year = yearInput();
  const slot = h("div", { "data-testid": "income-statement" });
  const picker = await collectivePicker(() => load());
  const closeSlot = h("div", { "data-testid": "year-end-close" });
  root.append(h("h1", {}, t("statement.title")), toolbar(field(t("collective"), picker), field(t("year"), year)),
    section(t("close.title"), closeSlot), section(t("statement.title"), slot));
  year.addEventListener("change", () => load());
  const turn = latest();

  async function loadClose() {
    const cid = session.collectiveId;
    let shown = null;
    try {
      shown = await api("ledger", `/v1/collectives/${encodeURIComponent(cid)}/year-end-close/${encodeURIComponent(year.value)}`);
    } catch (exc) {
      if (exc.status !== 404) { replace(closeSlot, failure(exc)); return; }
    }
    const parts = [];
    if (shown && shown.closed) {
      const vouchers = shown.entries.filter((e) => !e.reversed_by).map((e) => e.voucher_no).join("、");
      parts.push(h("p", { class: "badge ok", "data-testid": "close-status" }, `${t("close.done")} ${money(shown.net_income)}（${vouchers}）`));
    } else {
      parts.push(h("p", { class: "muted", "data-testid": "close-status" }, t("close.not_yet")));
      if (session.can("accountant")) {
        const button = h("button", { type: "button", class: "primary", "data-testid": "close-year" }, t("close.submit"));
        const submission = new Submission();
        button.addEventListener("click", async () => {
          busy(button, true);
          try {
            await api("ledger", `/v1/collectives/${encodeURIComponent(cid)}/year-end-close`, { method: "POST", body: { year: Number(year.value) }, submission });
            await load();
          } catch (exc) {
            button.after(failure(exc));
          } finally {
            busy(button, false);
          }
        });
        parts.push(button);
      }
    }
    replace(closeSlot, parts);
  }

  async function load() {
    const current = turn();
    loadClose();
    try {
      const st = await api("ledger", `/v1/collectives/${encodeURIComponent(session.collectiveId)}/income-statement`, { query: { year: year.value } });
      if (!current()) return;
      const rows = [];
      const addSection = (sec, title) => {
        if (!sec) return;
        rows.push({ label: h("strong", {}, title), amount: "" });
        for (const r of sec.rows || sec.items || []) rows.push({ label: [h("code", {}, r.code), " ", r.name], amount: r.amount });
        rows.push({ label: h("em", {}, `${title}${t("statement.subtotal")}`), amount: sec.total, cls: "subtotal" });
      };
      addSection(st.income, t("statement.income"));
      addSection(st.expenses, t("statement.expenses"));
      rows.push({ label: h("strong", {}, t("statement.net_income")), amount: st.net_income, cls: "grand" });
      for (const item of st.distribution || []) {
        const strong = item.item === "distributable" || item.item === "undistributed";
        rows.push({ label: strong ? h("strong", {}, item.name) : item.name, amount: item.amount, cls: strong ? "subtotal" : "" });
      }
      replace(slot, table([
        { key: "label", label: t("statement.item") },
        { key: "amount", label: t("amount"), money: true },
      ], rows, { testid: "income-statement-table" }));
    } catch (exc) {
      if (current()) replace(slot, failure(exc));
    }
  }
  await load();
}
