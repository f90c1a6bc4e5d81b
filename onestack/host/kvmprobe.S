/*
 * The KVM probe's boot sector (onestack/host/kvm.py carries the assembled
 * bytes; tests/unit/test_host_kvm.py assembles this again and compares).
 *
 *   as --32 -o probe.o kvmprobe.S && ld -m elf_i386 -Ttext 0x7c00 --oformat binary -o probe.bin probe.o
 *
 * SeaBIOS loads it at 0x7c00 in real mode. It takes the path every x86-64
 * guest kernel takes: into 32-bit protected mode (with a task register and an
 * IRET, where a nested KVM without full real-mode support fails), then into
 * 64-bit long mode (paging, EFER.LME) and an IRETQ, and finally writes 0x31 to
 * QEMU's isa-debug-exit port, which makes QEMU exit with status 0x31*2+1 = 99.
 */
    .code16
    .globl _start
_start:
    cli
    xor %ax, %ax
    mov %ax, %ds
    mov %ax, %ss
    mov $0x7c00, %sp
    lgdtl gdtr
    mov %cr0, %eax
    or $1, %eax
    mov %eax, %cr0
    ljmpl $0x08, $pm32
    .code32
pm32:
    mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov $0x7c00, %esp
    mov $0x18, %ax
    ltr %ax
    pushfl
    push $0x08
    push $after_iret
    iretl
after_iret:
    /* identity-map the first 2 MiB: PML4 at 0x1000, PDPT 0x2000, PD 0x3000 */
    mov $0x1000, %edi
    xor %eax, %eax
    mov $0xc00, %ecx
    rep stosl
    movl $0x2003, 0x1000
    movl $0x3003, 0x2000
    movl $0x83, 0x3000
    mov %cr4, %eax
    or $0x20, %eax
    mov %eax, %cr4
    mov $0x1000, %eax
    mov %eax, %cr3
    mov $0xc0000080, %ecx
    rdmsr
    or $0x100, %eax
    wrmsr
    mov %cr0, %eax
    or $0x80000000, %eax
    mov %eax, %cr0
    ljmpl $0x20, $lm64
    .code64
lm64:
    mov %rsp, %rax
    push $0x10
    push %rax
    pushfq
    push $0x20
    lea after_iretq(%rip), %rax
    push %rax
    iretq
after_iretq:
    mov $0x31, %al
    out %al, $0xf4
1:  hlt
    jmp 1b
    .p2align 3
gdt:
    .quad 0
    .quad 0x00cf9a000000ffff   /* 0x08 code32 */
    .quad 0x00cf92000000ffff   /* 0x10 data */
    /* 0x18 TSS32 at tss, limit 0x67 */
    .word 0x67
    .word tss
    .byte 0
    .byte 0x89
    .byte 0
    .byte 0
    .quad 0x00af9a000000ffff   /* 0x20 code64 */
gdt_end:
gdtr:
    .word gdt_end - gdt - 1
    .long gdt
tss:
    .fill 0x68, 1, 0
    .org 510
    .word 0xaa55
