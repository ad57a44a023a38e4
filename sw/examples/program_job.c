/* Programs one (layer, head) slot and starts a job through the generated register definitions.
 * A real host replaces bus_write/bus_read with its bus access (MMIO, UART bridge, ...); here they
 * print the accesses so the example can be checked against regmap.json. */
#include <stdint.h>
#include <stdio.h>

#include "leopard_regs.h"

static void bus_write(uint32_t addr, uint32_t data) { printf("write 0x%02X 0x%08X\n", addr, data); }

static uint32_t bus_read(uint32_t addr) {
    printf("read 0x%02X\n", addr);
    return addr == LEOPARD_ID_ADDR ? LEOPARD_ID_EXPECTED : 0u;
}

static uint32_t field(uint32_t value, uint32_t lsb, uint32_t mask) { return (value << lsb) & mask; }

int main(void) {
    if (bus_read(LEOPARD_ID_ADDR) != LEOPARD_ID_EXPECTED) {
        return 1;
    }
    unsigned slot = LEOPARD_THRESHOLD_COUNT - 1u;
    bus_write(LEOPARD_THRESHOLD_ADDR(slot),
              field((uint32_t)-1234, LEOPARD_THRESHOLD_THRESHOLD_LSB, LEOPARD_THRESHOLD_THRESHOLD_MASK));
    bus_write(LEOPARD_SCALE_ADDR(slot),
              field(40000u, LEOPARD_SCALE_MANTISSA_LSB, LEOPARD_SCALE_MANTISSA_MASK) |
              field(30u, LEOPARD_SCALE_SHIFT_LSB, LEOPARD_SCALE_SHIFT_MASK));
    bus_write(LEOPARD_MODE_ADDR, field(1u, LEOPARD_MODE_CAUSAL_LSB, LEOPARD_MODE_CAUSAL_MASK));
    bus_write(LEOPARD_JOB_KEYS_ADDR, 5u);
    bus_write(LEOPARD_JOB_QUERIES_ADDR, 5u);
    bus_write(LEOPARD_JOB_FIRST_ADDR, 0u);
    bus_write(LEOPARD_JOB_SLOT_ADDR, slot);
    bus_write(LEOPARD_CTRL_ADDR, field(1u, LEOPARD_CTRL_START_LSB, LEOPARD_CTRL_START_MASK));
    bus_read(LEOPARD_STATUS_ADDR);
    return 0;
}
