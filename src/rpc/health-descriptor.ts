// The descriptor of grpc/health/v1/health.proto, for server reflection only (the health service
// itself is grpc-health-check's). Written out by hand because the one grpc-health-check exposes
// (built by proto-loader/protobufjs) is not what protoc emits: relative type names ("Statuses",
// "ServingStatus") and a map entry not named "StatusesEntry". Go reflection clients (grpcurl,
// buf curl) reject that file, so "buf curl .../grpc.health.v1.Health/Check" failed with
// `failed to find service named "grpc.health.v1.Health" in schema`. This mirrors the upstream
// file (https://github.com/grpc/grpc-proto/blob/master/grpc/health/v1/health.proto) as protoc
// would describe it; options and comments are left out.
import { create } from "@bufbuild/protobuf";
import {
  type FileDescriptorProto,
  FieldDescriptorProto_Label as Label,
  FieldDescriptorProto_Type as Type,
  FileDescriptorProtoSchema,
} from "@bufbuild/protobuf/wkt";

const PKG = ".grpc.health.v1";

export const HEALTH_FILE_DESCRIPTOR: FileDescriptorProto = create(FileDescriptorProtoSchema, {
  name: "grpc/health/v1/health.proto",
  package: "grpc.health.v1",
  syntax: "proto3",
  messageType: [
    {
      name: "HealthCheckRequest",
      field: [{ name: "service", jsonName: "service", number: 1, label: Label.OPTIONAL, type: Type.STRING }],
    },
    {
      name: "HealthListRequest",
    },
    {
      name: "HealthListResponse",
      field: [
        {
          name: "statuses",
          jsonName: "statuses",
          number: 1,
          label: Label.REPEATED,
          type: Type.MESSAGE,
          typeName: `${PKG}.HealthListResponse.StatusesEntry`,
        },
      ],
      nestedType: [
        {
          name: "StatusesEntry",
          field: [
            { name: "key", jsonName: "key", number: 1, label: Label.OPTIONAL, type: Type.STRING },
            {
              name: "value",
              jsonName: "value",
              number: 2,
              label: Label.OPTIONAL,
              type: Type.MESSAGE,
              typeName: `${PKG}.HealthCheckResponse`,
            },
          ],
          options: { mapEntry: true },
        },
      ],
    },
    {
      name: "HealthCheckResponse",
      field: [
        {
          name: "status",
          jsonName: "status",
          number: 1,
          label: Label.OPTIONAL,
          type: Type.ENUM,
          typeName: `${PKG}.HealthCheckResponse.ServingStatus`,
        },
      ],
      enumType: [
        {
          name: "ServingStatus",
          value: [
            { name: "UNKNOWN", number: 0 },
            { name: "SERVING", number: 1 },
            { name: "NOT_SERVING", number: 2 },
            { name: "SERVICE_UNKNOWN", number: 3 },
          ],
        },
      ],
    },
  ],
  service: [
    {
      name: "Health",
      method: [
        { name: "Check", inputType: `${PKG}.HealthCheckRequest`, outputType: `${PKG}.HealthCheckResponse` },
        { name: "List", inputType: `${PKG}.HealthListRequest`, outputType: `${PKG}.HealthListResponse` },
        {
          name: "Watch",
          inputType: `${PKG}.HealthCheckRequest`,
          outputType: `${PKG}.HealthCheckResponse`,
          serverStreaming: true,
        },
      ],
    },
  ],
});
