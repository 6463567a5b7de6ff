import { create } from "@bufbuild/protobuf";
import { type EventService, WatchEventsResponseSchema } from "../gen/creditd/v1/event_service_pb.js";
import { EVENT_TYPES } from "../events/event.js";
import type { EventHub } from "../events/hub.js";
import type { ServiceHandlers } from "../rpc/types.js";
import { invalidField } from "./errors.js";
import * as v from "./validate.js";

const KNOWN_TYPES: ReadonlySet<string> = new Set(EVENT_TYPES);
const TYPES_RULE = `must be one of ${EVENT_TYPES.join(", ")}`;

/** Live events (WatchEvents), read from the events streams through the process's one EventHub. */
export function eventService(opts: { hub: EventHub }): ServiceHandlers<typeof EventService> {
  const { hub } = opts;
  return {
    async *watchEvents(req, ctx) {
      // Checked before anything is subscribed: a bad request ends the stream with INVALID_ARGUMENT, no message.
      const accountId = req.accountId === "" ? undefined : v.accountId("account_id", req.accountId);
      req.types.forEach((type, i) => {
        if (!KNOWN_TYPES.has(type)) throw invalidField(`types[${i}]`, TYPES_RULE);
      });
      // Ends (done) when ctx.signal aborts; the edges then end the call with the signal's reason.
      const watcher = hub.watch({ accountId, types: req.types }, ctx.signal);
      try {
        for await (const event of watcher) {
          yield create(WatchEventsResponseSchema, { event });
        }
      } finally {
        void watcher.return();
      }
    },
  };
}
