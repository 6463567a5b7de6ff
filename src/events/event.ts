// Events as the account scripts write them (includes/account.lua emit(): one entry per event in the events stream
// of the account's hash slot, `<prefix>:events:{<slot tag>}`) and as creditd serves them: WatchEvents and the
// webhook body (the Event message's proto3 JSON form).
import { create, toJsonString } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  type Event,
  EventSchema,
  DepletedSchema,
  GrantedSchema,
  HoldExpiredSchema,
  PeriodResetSchema,
  RefundedSchema,
  ThresholdCrossedSchema,
} from "../gen/creditd/v1/event_service_pb.js";

export const EVENT_TYPES = ["threshold", "depleted", "period_reset", "grant", "refund", "hold_expired"] as const;
export type EventType = (typeof EVENT_TYPES)[number];

/** The slot tag of an events stream key (`<prefix>:events:{<tag>}`), or null for another key. */
export function slotTagOfEventsKey(key: string): string | null {
  const m = /:events:\{([^}]*)\}$/.exec(key);
  return m ? m[1]! : null;
}

/**
 * The event id: the slot tag and the stream entry id, e.g. "3f-1732233600000-0". Stream ids are unique within a
 * stream and each slot has one stream, so the id is unique, and it is the same on every read of the entry.
 */
export function eventId(slotTag: string, streamId: string): string {
  return `${slotTag}-${streamId}`;
}

/** Stream entry fields ([k1, v1, k2, v2, ...] as XREAD returns them) to a map. */
export function fieldMap(fields: readonly string[]): Map<string, string> {
  const m = new Map<string, string>();
  for (let i = 0; i + 1 < fields.length; i += 2) m.set(fields[i]!, fields[i + 1]!);
  return m;
}

function int(f: Map<string, string>, name: string): bigint {
  const v = f.get(name);
  return v === undefined || v === "" ? 0n : BigInt(v);
}

function time(f: Map<string, string>, name: string) {
  const v = f.get(name);
  return v === undefined || v === "" || v === "0" ? undefined : timestampFromMs(Number(v));
}

/**
 * One stream entry as an Event. An entry of a type this build does not know is returned with only its
 * common fields (id, type, account, time), so a newer writer never stops an older reader.
 */
export function decodeEvent(slotTag: string, streamId: string, fields: readonly string[]): Event {
  const f = fieldMap(fields);
  const type = f.get("type") ?? "";
  const base = {
    id: eventId(slotTag, streamId),
    type,
    accountId: f.get("account") ?? "",
    time: time(f, "t"),
  };
  switch (type) {
    case "threshold":
      return create(EventSchema, {
        ...base,
        detail: {
          case: "threshold",
          value: create(ThresholdCrossedSchema, {
            percent: Number(f.get("percent") ?? 0),
            availableMicros: int(f, "available"),
            periodCreditsMicros: int(f, "period_credits"),
            periodEnd: time(f, "period_end"),
          }),
        },
      });
    case "depleted":
      return create(EventSchema, {
        ...base,
        detail: {
          case: "depleted",
          value: create(DepletedSchema, { periodCreditsMicros: int(f, "period_credits"), periodEnd: time(f, "period_end") }),
        },
      });
    case "period_reset":
      return create(EventSchema, {
        ...base,
        detail: {
          case: "periodReset",
          value: create(PeriodResetSchema, {
            planId: f.get("plan") ?? "",
            periodStart: time(f, "period_start"),
            periodEnd: time(f, "period_end"),
            missedPeriods: Number(f.get("missed") ?? 0),
            periodCreditsMicros: int(f, "period_credits"),
          }),
        },
      });
    case "grant":
      return create(EventSchema, {
        ...base,
        detail: {
          case: "grant",
          value: create(GrantedSchema, {
            grantId: f.get("grant") ?? "",
            bucketId: f.get("bucket") ?? "",
            kind: f.get("kind") ?? "",
            amountMicros: int(f, "amt"),
            expiresAt: time(f, "exp"),
          }),
        },
      });
    case "refund":
      return create(EventSchema, {
        ...base,
        detail: {
          case: "refund",
          value: create(RefundedSchema, {
            requestId: f.get("req") ?? "",
            amountMicros: int(f, "amt"),
            toExpiredMicros: int(f, "to_expired"),
            from: f.get("from") === "s" ? "settled" : "held",
            reason: f.get("reason") ?? "",
          }),
        },
      });
    case "hold_expired":
      return create(EventSchema, {
        ...base,
        detail: {
          case: "holdExpired",
          value: create(HoldExpiredSchema, {
            requestId: f.get("req") ?? "",
            amountMicros: int(f, "amt"),
            deadline: time(f, "deadline"),
          }),
        },
      });
    default:
      return create(EventSchema, base);
  }
}

/** The webhook body: the event's proto3 JSON (int64 as strings, as proto3 JSON has them). */
export function eventJson(event: Event): string {
  return toJsonString(EventSchema, event);
}
