// Money, dates and the words for an order's state.
//
// Money travels as {amount, currency}: integer minor units (cents) and an ISO 4217 code,
// never a float. How many minor units make a major one depends on the currency (100 for
// EUR, 1 for JPY), which Intl knows.

const moneyFormats = new Map();

function moneyFormat(currency) {
  if (!moneyFormats.has(currency)) {
    moneyFormats.set(currency, new Intl.NumberFormat(undefined, { style: "currency", currency }));
  }
  return moneyFormats.get(currency);
}

export function money({ amount, currency }) {
  const format = moneyFormat(currency);
  const digits = format.resolvedOptions().maximumFractionDigits;
  return format.format(amount / 10 ** digits);
}

export function times(price, quantity) {
  return { amount: price.amount * quantity, currency: price.currency };
}

// Totals per currency: a cart could mix them, an order cannot (orders refuses that).
export function totals(prices) {
  const sums = new Map();
  for (const { amount, currency } of prices) sums.set(currency, (sums.get(currency) || 0) + amount);
  return [...sums].map(([currency, amount]) => ({ amount, currency }));
}

const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

export function date(iso) {
  return dateFormat.format(new Date(iso));
}

export function shortId(id) {
  return id.slice(0, 8).toUpperCase();
}

export function plural(count, one, many) {
  return `${count} ${count === 1 ? one : many}`;
}

export function seconds(count) {
  if (count < 60) return plural(count, "second", "seconds");
  return plural(Math.ceil(count / 60), "minute", "minutes");
}

export const STATUS_LABELS = {
  PENDING: "Processing",
  CONFIRMED: "Confirmed",
  REJECTED: "Not placed",
  CANCELLED: "Cancelled",
};

// What happened to an order, in the words a shopper would use.
export function orderExplanation(order) {
  const payment = order.payment;
  switch (order.status) {
    case "PENDING":
      return order.cancellation === "requested"
        ? "Cancelling: we're stopping this order."
        : "We're reserving your items and authorizing your card. This takes a moment.";
    case "CONFIRMED":
      if (order.cancellation === "requested") return "Cancelling: we're refunding your payment.";
      if (order.cancellation === "refund_failed") {
        return "We couldn't refund this order yet. You can ask to cancel it again.";
      }
      return "Your order is confirmed. Thank you for shopping with Mercato!";
    case "REJECTED":
      return rejection(order.reason, payment);
    case "CANCELLED": {
      const refunded = payment && payment.refunded && payment.refunded.amount > 0;
      return refunded
        ? `This order was cancelled and ${money(payment.refunded)} was refunded to your card.`
        : "This order was cancelled. Nothing was charged.";
    }
    default:
      return "";
  }
}

function rejection(reason, payment) {
  if (reason === "out_of_stock") {
    return "Sorry, some items ran out of stock before we could reserve them. Nothing was charged.";
  }
  if (reason === "payment_declined") {
    if (payment && payment.decline_reason === "insufficient_funds") {
      return "Your card was declined: insufficient funds. Nothing was charged. Try another card.";
    }
    return "Your card was declined. Nothing was charged. Try another card.";
  }
  if (reason === "timeout") {
    return "We couldn't finish your order in time. Nothing was charged; please try again.";
  }
  return "We couldn't place this order. Nothing was charged.";
}
