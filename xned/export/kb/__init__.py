"""KB building: source readers, the builder, filter, writer, entity vectors, dense index, shards, overlays."""
