//! The bytes of a ZIP archive written front to back, never seeking (APPNOTE 6.3.10): each entry
//! is a local header, the file's bytes as they are (stored: photos and videos are compressed
//! already), and a data descriptor with its CRC-32 and size, known only once it was streamed.
//! The central directory at the end always uses ZIP64 fields, so files over 4 GiB, archives
//! over 4 GiB and more than 65,535 entries need no second format.

use time::OffsetDateTime;

const LOCAL: u32 = 0x0403_4b50;
const DESCRIPTOR: u32 = 0x0807_4b50;
const CENTRAL: u32 = 0x0201_4b50;
const END64: u32 = 0x0606_4b50;
const LOCATOR64: u32 = 0x0706_4b50;
const END: u32 = 0x0605_4b50;
/// ZIP64 (4.5).
const VERSION: u16 = 45;
/// Sizes and CRC in the data descriptor (bit 3); the name is UTF-8 (bit 11).
const FLAGS: u16 = (1 << 3) | (1 << 11);

/// One entry as the central directory lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub modified: OffsetDateTime,
    /// Where its local header starts.
    pub offset: u64,
    pub crc32: u32,
    pub size: u64,
}

/// MS-DOS time and date (local time is UTC here; years before 1980 become 1980).
fn dos(t: OffsetDateTime) -> (u16, u16) {
    let year = t.year().clamp(1980, 2107) as u16;
    let time = (u16::from(t.hour()) << 11) | (u16::from(t.minute()) << 5) | (u16::from(t.second()) / 2);
    let date = ((year - 1980) << 9) | (u16::from(u8::from(t.month())) << 5) | u16::from(t.day());
    (time, date)
}

/// The local header that opens an entry (its size and CRC follow in the descriptor). Its ZIP64
/// extra field (sizes unknown yet: 0) tells a reader that reads front to back that the
/// descriptor's sizes are 8 bytes each (APPNOTE 4.3.9.2; without it such readers expect 4).
pub fn local_header(name: &str, modified: OffsetDateTime) -> Vec<u8> {
    let (time, date) = dos(modified);
    let mut b = Vec::with_capacity(30 + name.len() + 20);
    b.extend_from_slice(&LOCAL.to_le_bytes());
    b.extend_from_slice(&VERSION.to_le_bytes());
    b.extend_from_slice(&FLAGS.to_le_bytes());
    b.extend_from_slice(&0u16.to_le_bytes()); // stored
    b.extend_from_slice(&time.to_le_bytes());
    b.extend_from_slice(&date.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes()); // CRC: in the descriptor
    b.extend_from_slice(&u32::MAX.to_le_bytes()); // sizes: in the ZIP64 field, then the descriptor
    b.extend_from_slice(&u32::MAX.to_le_bytes());
    b.extend_from_slice(&(name.len() as u16).to_le_bytes());
    b.extend_from_slice(&20u16.to_le_bytes()); // extra field length
    b.extend_from_slice(name.as_bytes());
    b.extend_from_slice(&1u16.to_le_bytes()); // ZIP64 extended information
    b.extend_from_slice(&16u16.to_le_bytes());
    b.extend_from_slice(&[0; 16]);
    b
}

/// The data descriptor that closes an entry (ZIP64 form: 8-byte sizes).
pub fn data_descriptor(crc32: u32, size: u64) -> Vec<u8> {
    let mut b = Vec::with_capacity(24);
    b.extend_from_slice(&DESCRIPTOR.to_le_bytes());
    b.extend_from_slice(&crc32.to_le_bytes());
    b.extend_from_slice(&size.to_le_bytes());
    b.extend_from_slice(&size.to_le_bytes());
    b
}

/// The central directory and the end records, for entries whose data ended at `offset`.
pub fn central_directory(entries: &[Entry], offset: u64) -> Vec<u8> {
    let mut b = Vec::new();
    for e in entries {
        let (time, date) = dos(e.modified);
        b.extend_from_slice(&CENTRAL.to_le_bytes());
        b.extend_from_slice(&VERSION.to_le_bytes()); // made by
        b.extend_from_slice(&VERSION.to_le_bytes()); // needed
        b.extend_from_slice(&FLAGS.to_le_bytes());
        b.extend_from_slice(&0u16.to_le_bytes());
        b.extend_from_slice(&time.to_le_bytes());
        b.extend_from_slice(&date.to_le_bytes());
        b.extend_from_slice(&e.crc32.to_le_bytes());
        b.extend_from_slice(&u32::MAX.to_le_bytes()); // sizes and offset: in the ZIP64 field
        b.extend_from_slice(&u32::MAX.to_le_bytes());
        b.extend_from_slice(&(e.name.len() as u16).to_le_bytes());
        b.extend_from_slice(&28u16.to_le_bytes()); // extra field length
        b.extend_from_slice(&0u16.to_le_bytes()); // comment
        b.extend_from_slice(&0u16.to_le_bytes()); // disk
        b.extend_from_slice(&0u16.to_le_bytes()); // internal attributes
        b.extend_from_slice(&0u32.to_le_bytes()); // external attributes
        b.extend_from_slice(&u32::MAX.to_le_bytes());
        b.extend_from_slice(e.name.as_bytes());
        b.extend_from_slice(&1u16.to_le_bytes()); // ZIP64 extended information
        b.extend_from_slice(&24u16.to_le_bytes());
        b.extend_from_slice(&e.size.to_le_bytes());
        b.extend_from_slice(&e.size.to_le_bytes());
        b.extend_from_slice(&e.offset.to_le_bytes());
    }
    let size = b.len() as u64;
    let end64_at = offset + size;
    let count = entries.len() as u64;
    b.extend_from_slice(&END64.to_le_bytes());
    b.extend_from_slice(&44u64.to_le_bytes());
    b.extend_from_slice(&VERSION.to_le_bytes());
    b.extend_from_slice(&VERSION.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    b.extend_from_slice(&count.to_le_bytes());
    b.extend_from_slice(&count.to_le_bytes());
    b.extend_from_slice(&size.to_le_bytes());
    b.extend_from_slice(&offset.to_le_bytes());
    b.extend_from_slice(&LOCATOR64.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    b.extend_from_slice(&end64_at.to_le_bytes());
    b.extend_from_slice(&1u32.to_le_bytes());
    b.extend_from_slice(&END.to_le_bytes());
    b.extend_from_slice(&[0; 4]); // disks
    b.extend_from_slice(&u16::MAX.to_le_bytes());
    b.extend_from_slice(&u16::MAX.to_le_bytes());
    b.extend_from_slice(&u32::MAX.to_le_bytes());
    b.extend_from_slice(&u32::MAX.to_le_bytes());
    b.extend_from_slice(&0u16.to_le_bytes());
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn dos_times_round_to_two_seconds_and_clamp_to_1980() {
        let (time, date) = dos(datetime!(2024-05-17 13:45:31 UTC));
        assert_eq!((time >> 11, (time >> 5) & 63, (time & 31) * 2), (13, 45, 30));
        assert_eq!((date >> 9, (date >> 5) & 15, date & 31), (44, 5, 17));
        assert_eq!(dos(datetime!(1970-01-01 0:00 UTC)).1 >> 9, 0);
    }

    #[test]
    fn records_have_their_fixed_sizes() {
        assert_eq!(local_header("a/b.jpg", datetime!(2024-01-01 0:00 UTC)).len(), 30 + 7 + 20);
        assert_eq!(data_descriptor(1, 2).len(), 24);
        let e = Entry { name: "x".into(), modified: datetime!(2024-01-01 0:00 UTC), offset: 0, crc32: 0, size: 0 };
        // central header 46 + name + ZIP64 extra 28; end64 56; locator 20; end 22
        assert_eq!(central_directory(&[e], 0).len(), 46 + 1 + 28 + 56 + 20 + 22);
    }
}
