"""gRPC stubs generated from proto/mercato/inventory/v1/inventory.proto.

Do not edit: run services/inventory/scripts/generate_grpc.py.
"""
