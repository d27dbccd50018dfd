"""The requant engine: the streaming int32 -> int8 requantizer every engine shares."""
