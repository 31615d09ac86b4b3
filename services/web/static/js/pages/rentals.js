// Operator: rent roll, occupancy and arrears by age of a project; record a rent payment.

import { api, Submission } from "../api.js";
import { t } from "../i18n.js";
import { projectPicker, session } from "../session.js";
import { busy, clearErrors, failure, field, h, money, replace, section, showError, table, today } from "../ui.js";

function tenantName(tenant) {
  if (!tenant) return "";
  return typeof tenant === "string" ? tenant : tenant.name || "";
}

export async function rentalsPage(root) {
  const on = h("input", { type: "date", value: today(), name: "on", "data-testid": "rentals-on" });
  const rollSlot = h("div", { "data-testid": "rent-roll" });
  const occupancySlot = h("div", { "data-testid": "occupancy" });
  const arrearsSlot = h("div", { "data-testid": "arrears" });
  const paymentSlot = h("div", {});
  const picker = await projectPicker(() => load());
  root.append(
    h("h1", {}, t("nav.rentals")),
    h("div", { class: "toolbar" }, field(t("project"), picker), field(t("rentals.on"), on)),
    h("div", { class: "grid-2" }, section(t("rentals.occupancy"), occupancySlot), section(t("rentals.arrears"), arrearsSlot)),
    section(t("rentals.rent_roll"), rollSlot),
    session.can("operator") ? section(t("rentals.record_payment"), paymentSlot) : null,
  );
  on.addEventListener("change", () => load());

  const path = (suffix) => `/v1/projects/${encodeURIComponent(session.projectId)}/${suffix}`;

  async function load() {
    if (!session.projectId) {
      replace(rollSlot, h("p", { class: "muted" }, t("rentals.no_project")));
      return;
    }
    await Promise.all([loadRoll(), loadOccupancy(), loadArrears(), session.can("operator") ? loadPaymentForm() : null]);
  }

  async function loadRoll() {
    try {
      const roll = await api("rentals", path("rent-roll"), { query: { on: on.value } });
      const rows = roll.items || [];
      replace(rollSlot, table([
        { key: "building", label: t("rentals.building"), render: (r) => r.building_name || r.building_id },
        { key: "status", label: t("status"), render: (r) => h("span", { class: `tag ${r.status}` }, t(`occ.${r.status}`)) },
        { key: "tenant", label: t("rentals.tenant"), render: (r) => tenantName(r.tenant) },
        { key: "lease_id", label: t("rentals.lease") },
        { key: "monthly_rent", label: t("rentals.monthly_rent"), money: true },
      ], rows, { testid: "rent-roll-table", footer: roll.total_monthly_rent !== undefined
        ? { building: t("total"), monthly_rent: roll.total_monthly_rent } : undefined }));
    } catch (exc) {
      replace(rollSlot, failure(exc));
    }
  }

  async function loadOccupancy() {
    try {
      const occ = await api("rentals", path("occupancy"), { query: { on: on.value } });
      const buildings = occ.buildings || occ.items || [];
      const counts = {};
      for (const b of buildings) counts[b.status] = (counts[b.status] || 0) + 1;
      const total = occ.total ?? buildings.length;
      const occupied = occ.occupied ?? counts.occupied ?? 0;
      const rate = occ.rate ?? occ.occupancy_rate ?? (total ? `${Math.round((occupied * 1000) / total) / 10}%` : "—");
      replace(occupancySlot, h("dl", { class: "stats", "data-testid": "occupancy-stats" },
        h("dt", {}, t("rentals.buildings")), h("dd", {}, String(total)),
        h("dt", {}, t("occ.occupied")), h("dd", {}, String(occupied)),
        h("dt", {}, t("occ.vacant")), h("dd", {}, String(occ.vacant ?? counts.vacant ?? total - occupied)),
        h("dt", {}, t("rentals.rate")), h("dd", {}, String(rate))));
    } catch (exc) {
      replace(occupancySlot, failure(exc));
    }
  }

  async function loadArrears() {
    try {
      const arr = await api("rentals", path("arrears"), { query: { as_of: on.value } });
      const buckets = arr.buckets || {};
      const rows = Object.entries(buckets).map(([bucket, amount]) => ({ bucket, amount }));
      replace(arrearsSlot, table([
        { key: "bucket", label: t("rentals.age"), render: (r) => t(`age.${r.bucket}`, {}, `${r.bucket} ${t("days")}`) },
        { key: "amount", label: t("amount"), money: true },
      ], rows, { testid: "arrears-table", footer: { bucket: t("total"), amount: arr.total } }));
    } catch (exc) {
      replace(arrearsSlot, failure(exc));
    }
  }

  async function loadPaymentForm() {
    let leases = [];
    try {
      leases = (await api("rentals", path("leases"))).items || [];
    } catch (exc) {
      replace(paymentSlot, failure(exc));
      return;
    }
    const lease = h("select", { name: "lease_id", "data-field": "lease_id", "data-testid": "payment-lease" },
      leases.map((l) => h("option", { value: l.lease_id },
        `${l.lease_id} · ${tenantName(l.tenant)}${l.monthly_rent ? ` · ${money(l.monthly_rent)}/${t("month")}` : ""}`)));
    const amount = h("input", { type: "text", inputmode: "decimal", name: "amount", "data-field": "amount", class: "amount",
      placeholder: "0.00", required: true, "data-testid": "payment-amount" });
    const receivedOn = h("input", { type: "date", name: "received_on", value: on.value || today(), "data-field": "received_on",
      "data-testid": "payment-date" });
    const submit = h("button", { type: "submit", class: "primary", "data-testid": "payment-submit" }, t("rentals.record"));
    const submission = new Submission();
    const form = h("form", { class: "inline-form", "data-testid": "payment-form", novalidate: true },
      field(t("rentals.lease"), lease), field(t("amount"), amount), field(t("rentals.received_on"), receivedOn), submit,
      h("div", { class: "form-error" }));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      clearErrors(form);
      busy(submit, true);
      try {
        const paid = await api("rentals", `/v1/leases/${encodeURIComponent(lease.value)}/payments`,
          { method: "POST", body: { amount: amount.value.trim(), received_on: receivedOn.value }, submission });
        amount.value = "";
        await Promise.all([loadRoll(), loadArrears()]);
        form.querySelector(".form-error").append(h("p", { class: "notice ok", role: "status", "data-testid": "payment-recorded" },
          `${t("rentals.recorded")} ${paid.payment_id || ""}`));
      } catch (exc) {
        showError(form, exc, "lease_id");
      } finally {
        busy(submit, false);
      }
    });
    replace(paymentSlot, leases.length ? form : h("p", { class: "muted" }, t("rentals.no_leases")));
  }

  await load();
}
