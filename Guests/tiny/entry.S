/*
 * The tiny guest's entry: a PVH kernel as Xen starts one (xen/include/public/elfnote.h,
 * XEN_ELFNOTE_PHYS32_ENTRY; xen/include/public/arch-x86/hvm/start_info.h): 32-bit flat
 * protected mode, paging off, %ebx the hvm_start_info. It builds identity page tables for the
 * low 4 GiB (2 MiB pages), switches to long mode itself (Intel SDM vol. 3, 10.8.5), and calls
 * guest_main(start_info) on its own stack. Also here: the IDT stubs (the upcall vector and the
 * exceptions), since they need exact control of the stack.
 */
#define XEN_ELFNOTE_PHYS32_ENTRY 18

    .section .note.Xen, "a", @note
    .balign 4
    .long 4                         /* namesz: "Xen" and its NUL */
    .long 4                         /* descsz */
    .long XEN_ELFNOTE_PHYS32_ENTRY
    .asciz "Xen"
    .balign 4
    .long _start32
    .balign 4

    .section .text.entry, "ax"
    .code32
    .globl _start32
_start32:
    cli
    movl %ebx, start_info_paddr
    /* pml4[0] -> pdpt; pdpt[0..3] -> pd0..pd3; pd[i] maps 2 MiB at i * 2 MiB, present+write+PS. */
    movl $pdpt, %eax
    orl $3, %eax
    movl %eax, pml4
    xorl %ecx, %ecx
1:  movl %ecx, %eax
    shll $12, %eax
    addl $pd, %eax
    orl $3, %eax
    movl %eax, pdpt(,%ecx,8)
    incl %ecx
    cmpl $4, %ecx
    jne 1b
    xorl %ecx, %ecx
2:  movl %ecx, %eax
    shll $21, %eax
    orl $0x83, %eax
    movl %eax, pd(,%ecx,8)
    movl %ecx, %eax
    shrl $11, %eax                  /* the high half of i * 2 MiB */
    movl %eax, pd+4(,%ecx,8)
    incl %ecx
    cmpl $2048, %ecx
    jne 2b
    movl %cr4, %eax
    orl $0x20, %eax                 /* CR4.PAE */
    movl %eax, %cr4
    movl $pml4, %eax
    movl %eax, %cr3
    movl $0xC0000080, %ecx          /* IA32_EFER */
    rdmsr
    orl $0x100, %eax                /* LME */
    wrmsr
    movl %cr0, %eax
    orl $0x80000001, %eax           /* PG, PE */
    movl %eax, %cr0
    lgdt gdt_pointer
    ljmp $0x08, $start64

    .code64
start64:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movw %ax, %fs
    movw %ax, %gs
    leaq stack_top(%rip), %rsp
    movl start_info_paddr(%rip), %edi
    call guest_main
3:  cli
    hlt
    jmp 3b

/* A secondary vCPU, started by VCPUOP_initialise in 64-bit mode with the stack and the page
 * tables of its context: its segments have no selectors yet, so it loads the GDT and reloads
 * CS (a far return) and the data segments before any interrupt can need them. */
    .globl ap_entry
ap_entry:
    lgdt gdt_pointer64(%rip)
    pushq $0x08
    leaq 1f(%rip), %rax
    pushq %rax
    lretq
1:  movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    call ap_main
2:  cli
    hlt
    jmp 2b

/* The upcall vector: saves the caller-saved registers (nine pushes keep the stack 16-byte
 * aligned after the CPU's five), calls guest_upcall, returns from the interrupt. */
    .globl upcall_entry
upcall_entry:
    pushq %rax
    pushq %rcx
    pushq %rdx
    pushq %rsi
    pushq %rdi
    pushq %r8
    pushq %r9
    pushq %r10
    pushq %r11
    cld
    call guest_upcall
    popq %r11
    popq %r10
    popq %r9
    popq %r8
    popq %rdi
    popq %rsi
    popq %rdx
    popq %rcx
    popq %rax
    iretq

/* Exceptions 0-31: each stub passes its vector and the faulting RIP's slot to guest_exception,
 * which reports and shuts the domain down as crashed. */
    .macro exception_stub n
    .globl exception_\n
exception_\n:
    movq $\n, %rdi
    movq %rsp, %rsi
    andq $-16, %rsp
    call guest_exception
    .endm
    .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    exception_stub \n
    .endr

    .section .rodata
    .balign 8
gdt:
    .quad 0
    .quad 0x00AF9A000000FFFF        /* 0x08: 64-bit code, DPL 0 */
    .quad 0x00CF92000000FFFF        /* 0x10: data, DPL 0 */
gdt_end:
gdt_pointer:
    .word gdt_end - gdt - 1
    .long gdt
    .balign 8
gdt_pointer64:
    .word gdt_end - gdt - 1
    .quad gdt

    .section .bss
    .balign 4096
    .globl pml4
pml4: .skip 4096
pdpt: .skip 4096
pd:   .skip 4 * 4096
stack: .skip 16384
stack_top:
    .globl start_info_paddr
start_info_paddr: .skip 8
