"""The data plane: bulk bytes over plain TCP, granted over QUIC, written at their offsets."""
