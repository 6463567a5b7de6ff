// The receipt as the ledger keeps it (with the reservation and in the settle entry): a compact, stable JSON form.
// Apart from the pricer so readers of the ledger (the export CLI) do not load the tokenizers.
import { create } from "@bufbuild/protobuf";
import { LineItemSchema, type Receipt, ReceiptSchema } from "../gen/creditd/v1/pricing_pb.js";

/**
 * A compact, stable JSON form of a receipt for the ledger (amounts as strings: they are int64). Each item is
 * [description, quantity, unit, unit_price_micros, per, subtotal_micros]; parseReceiptJson reads it back.
 */
export function receiptJson(r: Receipt): string {
  return JSON.stringify({
    v: r.catalogVersion,
    total: r.totalMicros.toString(),
    ...(r.roundedFromMicros ? { rounded_from: r.roundedFromMicros.toString() } : {}),
    ...(r.tokenizer ? { tokenizer: r.tokenizer } : {}),
    ...(r.estimated ? { estimated: true } : {}),
    items: r.items.map((i) => [
      i.description, i.quantity.toString(), i.unit, i.unitPriceMicros.toString(), i.per.toString(), i.subtotalMicros.toString(),
    ]),
  });
}

/** The receipt a Settle stored, as a message again (a replayed Settle answers with it). */
export function parseReceiptJson(json: string): Receipt {
  const r = JSON.parse(json) as {
    v: string;
    total: string;
    rounded_from?: string;
    tokenizer?: string;
    estimated?: boolean;
    items: Array<[string, string, string, string, string, string]>;
  };
  return create(ReceiptSchema, {
    catalogVersion: r.v,
    totalMicros: BigInt(r.total),
    roundedFromMicros: BigInt(r.rounded_from ?? "0"),
    tokenizer: r.tokenizer ?? "",
    estimated: r.estimated ?? false,
    items: r.items.map(([description, quantity, unit, unitPriceMicros, per, subtotalMicros]) =>
      create(LineItemSchema, {
        description,
        quantity: BigInt(quantity),
        unit,
        unitPriceMicros: BigInt(unitPriceMicros),
        per: BigInt(per),
        subtotalMicros: BigInt(subtotalMicros),
      }),
    ),
  });
}
