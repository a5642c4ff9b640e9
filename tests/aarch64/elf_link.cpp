#include "tests/aarch64/elf_link.h"

#include <elf.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <vector>

namespace kiln::a64 {
namespace {

constexpr uint64_t kPage = 4096;
constexpr uint64_t kStubBytes = 16;  // ldr x16, #8; br x16; .quad target

uint64_t align_up(uint64_t v, uint64_t a) {
  return (v + a - 1) / a * a;
}

// Bounds-checked view of a table inside the object.
template <typename T>
Result<std::span<const T>> table(std::span<const uint8_t> obj, uint64_t off, uint64_t bytes,
                                 uint64_t entsize, const char* what) {
  if (entsize != sizeof(T))
    return make_error("ELF: ", what, " has entries of ", entsize, " bytes, expected ", sizeof(T));
  if (off > obj.size() || bytes > obj.size() - off || bytes % sizeof(T) != 0)
    return make_error("ELF: ", what, " [", off, ", +", bytes, ") is outside the object (",
                      obj.size(), " bytes)");
  if (reinterpret_cast<uintptr_t>(obj.data() + off) % alignof(T) != 0)
    return make_error("ELF: ", what, " is misaligned");
  return std::span<const T>(reinterpret_cast<const T*>(obj.data() + off), bytes / sizeof(T));
}

const char* reloc_name(uint32_t type) {
  switch (type) {
    case R_AARCH64_ABS64:
      return "R_AARCH64_ABS64";
    case R_AARCH64_ABS32:
      return "R_AARCH64_ABS32";
    case R_AARCH64_PREL64:
      return "R_AARCH64_PREL64";
    case R_AARCH64_PREL32:
      return "R_AARCH64_PREL32";
    case R_AARCH64_ADR_PREL_LO21:
      return "R_AARCH64_ADR_PREL_LO21";
    case R_AARCH64_ADR_PREL_PG_HI21:
      return "R_AARCH64_ADR_PREL_PG_HI21";
    case R_AARCH64_ADR_PREL_PG_HI21_NC:
      return "R_AARCH64_ADR_PREL_PG_HI21_NC";
    case R_AARCH64_ADD_ABS_LO12_NC:
      return "R_AARCH64_ADD_ABS_LO12_NC";
    case R_AARCH64_LDST8_ABS_LO12_NC:
      return "R_AARCH64_LDST8_ABS_LO12_NC";
    case R_AARCH64_LDST16_ABS_LO12_NC:
      return "R_AARCH64_LDST16_ABS_LO12_NC";
    case R_AARCH64_LDST32_ABS_LO12_NC:
      return "R_AARCH64_LDST32_ABS_LO12_NC";
    case R_AARCH64_LDST64_ABS_LO12_NC:
      return "R_AARCH64_LDST64_ABS_LO12_NC";
    case R_AARCH64_LDST128_ABS_LO12_NC:
      return "R_AARCH64_LDST128_ABS_LO12_NC";
    case R_AARCH64_TSTBR14:
      return "R_AARCH64_TSTBR14";
    case R_AARCH64_CONDBR19:
      return "R_AARCH64_CONDBR19";
    case R_AARCH64_JUMP26:
      return "R_AARCH64_JUMP26";
    case R_AARCH64_CALL26:
      return "R_AARCH64_CALL26";
    case R_AARCH64_ADR_GOT_PAGE:
      return "R_AARCH64_ADR_GOT_PAGE";
    case R_AARCH64_LD64_GOT_LO12_NC:
      return "R_AARCH64_LD64_GOT_LO12_NC";
    default:
      return nullptr;
  }
}

uint32_t read32(uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
void write32(uint8_t* p, uint32_t v) {
  std::memcpy(p, &v, 4);
}

// Fits `v` in a signed field of `bits` bits?
bool fits_signed(int64_t v, int bits) {
  return v >= -(int64_t(1) << (bits - 1)) && v < (int64_t(1) << (bits - 1));
}

// ADR/ADRP immediate: immlo in bits 29-30, immhi in bits 5-23.
uint32_t with_adr_imm(uint32_t insn, int64_t imm) {
  const uint32_t u = uint32_t(imm) & 0x1fffff;
  return (insn & ~((3u << 29) | (0x7ffffu << 5))) | ((u & 3) << 29) | ((u >> 2) << 5);
}

}  // namespace

LinkedObject& LinkedObject::operator=(LinkedObject&& o) noexcept {
  if (this != &o) {
    if (base_) munmap(base_, size_);
    base_ = o.base_;
    size_ = o.size_;
    globals_ = std::move(o.globals_);
    relocations_ = std::move(o.relocations_);
    o.base_ = nullptr;
    o.size_ = 0;
  }
  return *this;
}

LinkedObject::~LinkedObject() {
  if (base_) munmap(base_, size_);
}

Result<void*> LinkedObject::symbol(const std::string& name) const {
  auto it = globals_.find(name);
  if (it == globals_.end()) return make_error("the object defines no global symbol '", name, "'");
  return it->second;
}

Result<LinkedObject> link_object(std::span<const uint8_t> obj,
                                 const std::map<std::string, void*>& externals) {
  if (obj.size() < sizeof(Elf64_Ehdr)) return make_error("ELF: object of ", obj.size(), " bytes");
  Elf64_Ehdr eh;
  std::memcpy(&eh, obj.data(), sizeof eh);
  if (std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0) return make_error("ELF: bad magic");
  if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB)
    return make_error("ELF: not a 64-bit little-endian object");
  if (eh.e_type != ET_REL)
    return make_error("ELF: not a relocatable object (type ", eh.e_type, ")");
  if (eh.e_machine != EM_AARCH64)
    return make_error("ELF: machine ", eh.e_machine, ", not AArch64 (", EM_AARCH64, ")");
  KILN_ASSIGN_OR_RETURN(auto shdrs,
                        table<Elf64_Shdr>(obj, eh.e_shoff, uint64_t(eh.e_shnum) * eh.e_shentsize,
                                          eh.e_shentsize, "section header table"));

  // Layout: every allocated section at its alignment; writable ones after the others, on their
  // own pages; then one call stub per external symbol and one GOT slot per symbol.
  const Elf64_Shdr* symtab = nullptr;
  for (const Elf64_Shdr& s : shdrs) {
    if (s.sh_type == SHT_SYMTAB) {
      if (symtab) return make_error("ELF: more than one symbol table");
      symtab = &s;
    }
    if (s.sh_type == SHT_REL) return make_error("ELF: REL relocations (only RELA is supported)");
  }
  if (!symtab) return make_error("ELF: no symbol table");
  if (symtab->sh_link >= shdrs.size()) return make_error("ELF: symbol table without strings");
  const Elf64_Shdr& strtab = shdrs[symtab->sh_link];
  if (strtab.sh_offset > obj.size() || strtab.sh_size > obj.size() - strtab.sh_offset)
    return make_error("ELF: string table outside the object");
  KILN_ASSIGN_OR_RETURN(auto syms, table<Elf64_Sym>(obj, symtab->sh_offset, symtab->sh_size,
                                                    symtab->sh_entsize, "symbol table"));
  auto sym_name = [&](uint32_t off) -> Result<std::string> {
    if (off >= strtab.sh_size) return make_error("ELF: symbol name outside the string table");
    const char* s = reinterpret_cast<const char*>(obj.data() + strtab.sh_offset + off);
    const size_t n = strnlen(s, strtab.sh_size - off);
    if (n == strtab.sh_size - off) return make_error("ELF: unterminated symbol name");
    return std::string(s, n);
  };

  std::vector<uint64_t> place(shdrs.size(), UINT64_MAX);
  uint64_t size = 0;
  for (int writable = 0; writable < 2; ++writable) {
    if (writable) size = align_up(size, kPage);
    for (size_t i = 0; i < shdrs.size(); ++i) {
      const Elf64_Shdr& s = shdrs[i];
      if (!(s.sh_flags & SHF_ALLOC) || bool(s.sh_flags & SHF_WRITE) != bool(writable)) continue;
      const uint64_t a = s.sh_addralign ? s.sh_addralign : 1;
      if ((a & (a - 1)) != 0 || a > kPage)
        return make_error("ELF: section ", i, " has alignment ", a);
      if (s.sh_size > (uint64_t(1) << 30)) return make_error("ELF: section ", i, " too large");
      if (s.sh_type != SHT_NOBITS &&
          (s.sh_offset > obj.size() || s.sh_size > obj.size() - s.sh_offset))
        return make_error("ELF: section ", i, " is outside the object");
      size = align_up(size, a);
      place[i] = size;
      size += s.sh_size;
    }
  }
  if (size > (uint64_t(1) << 28)) return make_error("ELF: ", size, " bytes of sections");
  const uint64_t writable_start = [&] {
    uint64_t w = size;
    for (size_t i = 0; i < shdrs.size(); ++i)
      if (place[i] != UINT64_MAX && (shdrs[i].sh_flags & SHF_WRITE)) w = std::min(w, place[i]);
    return align_up(std::min(w, size), kPage);
  }();
  // Stubs and GOT slots: pages of their own after the sections, read-only once written.
  const uint64_t stubs = align_up(size, kPage);
  const uint64_t got = stubs + syms.size() * kStubBytes;
  const uint64_t total = align_up(got + syms.size() * 8, kPage);

  LinkedObject out;
  void* mem = mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return make_error("ELF: cannot map ", total, " bytes");
  out.base_ = mem;
  out.size_ = total;
  uint8_t* base = static_cast<uint8_t*>(mem);
  for (size_t i = 0; i < shdrs.size(); ++i)
    if (place[i] != UINT64_MAX && shdrs[i].sh_type != SHT_NOBITS)
      std::memcpy(base + place[i], obj.data() + shdrs[i].sh_offset, shdrs[i].sh_size);

  // Symbol addresses; 0 for symbols of sections that are not loaded (never relocated against).
  std::vector<uint64_t> addr(syms.size(), 0);
  std::vector<bool> external(syms.size(), false);
  for (size_t i = 1; i < syms.size(); ++i) {
    const Elf64_Sym& s = syms[i];
    const int bind = ELF64_ST_BIND(s.st_info);
    if (s.st_shndx == SHN_UNDEF) {
      KILN_ASSIGN_OR_RETURN(std::string name, sym_name(s.st_name));
      auto it = externals.find(name);
      if (it == externals.end()) {
        if (bind == STB_WEAK) continue;
        return make_error("ELF: undefined symbol '", name, "' (the harness provides ",
                          externals.size(), " external functions)");
      }
      addr[i] = reinterpret_cast<uint64_t>(it->second);
      external[i] = true;
      // A call stub, since the program's code may be out of a branch's range.
      uint8_t* stub = base + stubs + i * kStubBytes;
      write32(stub, 0x58000050);      // ldr x16, #8
      write32(stub + 4, 0xd61f0200);  // br x16
      std::memcpy(stub + 8, &addr[i], 8);
      continue;
    }
    if (s.st_shndx == SHN_ABS) {
      addr[i] = s.st_value;
    } else if (s.st_shndx == SHN_COMMON || s.st_shndx >= shdrs.size()) {
      return make_error("ELF: symbol ", i, " in unsupported section ", s.st_shndx);
    } else if (place[s.st_shndx] != UINT64_MAX) {
      if (s.st_value > shdrs[s.st_shndx].sh_size)
        return make_error("ELF: symbol ", i, " is outside its section");
      addr[i] = reinterpret_cast<uint64_t>(base + place[s.st_shndx]) + s.st_value;
    }
    if ((bind == STB_GLOBAL || bind == STB_WEAK) && addr[i]) {
      KILN_ASSIGN_OR_RETURN(std::string name, sym_name(s.st_name));
      out.globals_[name] = reinterpret_cast<void*>(addr[i]);
    }
  }

  for (size_t si = 0; si < shdrs.size(); ++si) {
    const Elf64_Shdr& rs = shdrs[si];
    if (rs.sh_type != SHT_RELA) continue;
    if (rs.sh_info >= shdrs.size()) return make_error("ELF: relocation section ", si, " target");
    if (place[rs.sh_info] == UINT64_MAX) continue;  // relocates something not loaded (debug info)
    if (rs.sh_link >= shdrs.size() || &shdrs[rs.sh_link] != symtab)
      return make_error("ELF: relocation section ", si, " uses another symbol table");
    KILN_ASSIGN_OR_RETURN(auto relas, table<Elf64_Rela>(obj, rs.sh_offset, rs.sh_size,
                                                        rs.sh_entsize, "relocation section"));
    const Elf64_Shdr& target = shdrs[rs.sh_info];
    uint8_t* tbase = base + place[rs.sh_info];
    for (size_t ri = 0; ri < relas.size(); ++ri) {
      const Elf64_Rela& r = relas[ri];
      const uint32_t type = ELF64_R_TYPE(r.r_info);
      const uint64_t si_ = ELF64_R_SYM(r.r_info);
      const char* tname = reloc_name(type);
      auto err = [&](auto&&... parts) {
        return make_error("ELF: relocation ", ri, " of section ", rs.sh_info, " (",
                          tname ? tname : "type " + std::to_string(type), "): ", parts...);
      };
      if (!tname) return err("unsupported relocation type");
      if (si_ >= syms.size()) return err("symbol index ", si_, " out of range");
      const uint64_t width = type == R_AARCH64_ABS64 || type == R_AARCH64_PREL64 ? 8 : 4;
      if (target.sh_type == SHT_NOBITS || r.r_offset > target.sh_size ||
          width > target.sh_size - r.r_offset)
        return err("offset ", r.r_offset, " is outside its section");
      if (si_ != 0 && !addr[si_] && syms[si_].st_shndx != SHN_ABS)
        return err("symbol ", si_, " has no address (a section that is not loaded?)");
      uint8_t* p = tbase + r.r_offset;
      const uint64_t P = reinterpret_cast<uint64_t>(p);
      const uint64_t S = addr[si_];
      const int64_t A = r.r_addend;
      const uint64_t SA = S + uint64_t(A);
      const uint32_t insn = read32(p);
      auto page = [](uint64_t x) { return x & ~uint64_t(0xfff); };
      auto lo12 = [&](int shift) -> Result<uint32_t> {
        if (SA & ((uint64_t(1) << shift) - 1))
          return err("address ", SA, " is not aligned to ", 1 << shift, " bytes");
        const uint32_t imm = uint32_t((SA & 0xfff) >> shift);
        return (insn & ~(0xfffu << 10)) | (imm << 10);
      };
      switch (type) {
        case R_AARCH64_ABS64:
          std::memcpy(p, &SA, 8);
          break;
        case R_AARCH64_ABS32: {
          if (SA > UINT32_MAX) return err("value does not fit 32 bits");
          write32(p, uint32_t(SA));
          break;
        }
        case R_AARCH64_PREL64: {
          const uint64_t v = SA - P;
          std::memcpy(p, &v, 8);
          break;
        }
        case R_AARCH64_PREL32: {
          const int64_t v = int64_t(SA - P);
          if (!fits_signed(v, 32)) return err("offset ", v, " does not fit 32 bits");
          write32(p, uint32_t(v));
          break;
        }
        case R_AARCH64_ADR_PREL_LO21: {
          const int64_t v = int64_t(SA - P);
          if (!fits_signed(v, 21)) return err("offset ", v, " out of ±1 MiB");
          write32(p, with_adr_imm(insn, v));
          break;
        }
        case R_AARCH64_ADR_PREL_PG_HI21:
        case R_AARCH64_ADR_PREL_PG_HI21_NC: {
          const int64_t v = int64_t(page(SA) - page(P));
          if (type == R_AARCH64_ADR_PREL_PG_HI21 && !fits_signed(v, 33))
            return err("page offset ", v, " out of ±4 GiB");
          write32(p, with_adr_imm(insn, v >> 12));
          break;
        }
        case R_AARCH64_ADD_ABS_LO12_NC:
        case R_AARCH64_LDST8_ABS_LO12_NC: {
          KILN_ASSIGN_OR_RETURN(uint32_t v, lo12(0));
          write32(p, v);
          break;
        }
        case R_AARCH64_LDST16_ABS_LO12_NC:
        case R_AARCH64_LDST32_ABS_LO12_NC:
        case R_AARCH64_LDST64_ABS_LO12_NC:
        case R_AARCH64_LDST128_ABS_LO12_NC: {
          const int shift = type == R_AARCH64_LDST16_ABS_LO12_NC   ? 1
                            : type == R_AARCH64_LDST32_ABS_LO12_NC ? 2
                            : type == R_AARCH64_LDST64_ABS_LO12_NC ? 3
                                                                   : 4;
          KILN_ASSIGN_OR_RETURN(uint32_t v, lo12(shift));
          write32(p, v);
          break;
        }
        case R_AARCH64_TSTBR14:
        case R_AARCH64_CONDBR19:
        case R_AARCH64_JUMP26:
        case R_AARCH64_CALL26: {
          const bool branch = type == R_AARCH64_JUMP26 || type == R_AARCH64_CALL26;
          const uint64_t to =
              branch && external[si_]
                  ? reinterpret_cast<uint64_t>(base + stubs + si_ * kStubBytes) + uint64_t(A)
                  : SA;
          const int64_t v = int64_t(to - P);
          const int bits = type == R_AARCH64_TSTBR14 ? 14 : type == R_AARCH64_CONDBR19 ? 19 : 26;
          if ((v & 3) != 0 || !fits_signed(v >> 2, bits))
            return err("branch offset ", v, " out of range or misaligned");
          const uint32_t mask = (1u << bits) - 1;
          const int at = branch ? 0 : 5;
          write32(p, (insn & ~(mask << at)) | ((uint32_t(v >> 2) & mask) << at));
          break;
        }
        case R_AARCH64_ADR_GOT_PAGE:
        case R_AARCH64_LD64_GOT_LO12_NC: {
          if (A != 0) return err("GOT relocation with addend ", A);
          uint8_t* slot = base + got + si_ * 8;
          std::memcpy(slot, &S, 8);
          const uint64_t G = reinterpret_cast<uint64_t>(slot);
          if (type == R_AARCH64_ADR_GOT_PAGE) {
            write32(p, with_adr_imm(insn, int64_t(page(G) - page(P)) >> 12));
          } else {
            write32(p, (insn & ~(0xfffu << 10)) | (uint32_t((G & 0xfff) >> 3) << 10));
          }
          break;
        }
      }
      ++out.relocations_[tname];
    }
  }

  // Code and constants read-only and executable; writable sections stay writable.
  if (mprotect(base, writable_start, PROT_READ | PROT_EXEC) != 0 ||
      mprotect(base + stubs, total - stubs, PROT_READ | PROT_EXEC) != 0)
    return make_error("ELF: mprotect failed");
  __builtin___clear_cache(reinterpret_cast<char*>(base), reinterpret_cast<char*>(base + total));
  return out;
}

}  // namespace kiln::a64
